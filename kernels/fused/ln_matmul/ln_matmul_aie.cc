// Core object of the fused ln_matmul design: the stage kernels' AIE sources,
// unchanged, in one object (each stage runs exactly its own kernel's code).
// The LN core calls xdna_layernorm (fp32 in, int8 out); the MM core
// matmul_zero_i32 / matmul_i8_i32 / matmul_epilogue_* on A tiles streamed back
// from OUT (design.py says why).
#include "../../layernorm/aie/layernorm_aie.cc"
#include "../../matmul/aie/matmul_aie.cc"
