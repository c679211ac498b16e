// Core object of the fused ln_matmul design: the stage kernels' AIE sources,
// unchanged, in one object (each stage runs exactly its own kernel's code),
// plus a pointer-offset shim so the matmul core can walk the K tiles of the
// A row block it holds.
#include "../../layernorm/aie/layernorm_aie.cc"
#include "../../matmul/aie/matmul_aie.cc"

extern "C" {
// acc += A[:, kt*64 : kt*64+64] x W_tile, A block in mmul order (32 x 64 per K tile).
void fused_mm_kslice(const int8_t* __restrict a_block, const int8_t* __restrict w,
                     int32_t kt) {
  matmul_i8_i32(a_block + kt * 32 * 64, w);
}
}
