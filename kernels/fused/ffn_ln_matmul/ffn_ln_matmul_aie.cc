// Core object of the fused ffn_ln_matmul design: exactly ffn_block's object.
// The ln_matmul tail (phases 4-5) runs xdna_layernorm on the LN cores and
// matmul_i8_i32 + matmul_epilogue_i8 / matmul_epilogue_f32 on the fc1 cores,
// all of which ffn_block's object already contains.
#include "../ffn_block/ffn_block_aie.cc"
