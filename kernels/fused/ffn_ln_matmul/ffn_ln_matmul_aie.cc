// Core object of the fused ffn_ln_matmul design: exactly ffn_block's object.
// The ln_matmul tail (phase 3) runs xdna_layernorm_mmul_a on the LN cores and
// fused_mm_kslice + matmul_epilogue_i8 / matmul_epilogue_f32 on the fc1 cores,
// all of which ffn_block's object already contains.
#include "../ffn_block/ffn_block_aie.cc"
