// Core object of the fused attn_block design: stage sources unchanged, plus
// the shim that runs the out-projection epilogue and the residual add on one
// core. The attention stage's core functions come from its own source.
#include "../../add/aie/add_aie.cc"
#include "../../attention/aie/attention_aie.cc"
#include "../../matmul/aie/matmul_aie.cc"

namespace {
alignas(32) float g_y[32 * 64];
}  // namespace

extern "C" {

// matmul fp32 epilogue, then the residual add, row-major [32, 64].
void fused_epilogue_f32_add(const float* __restrict params, const float* __restrict resid,
                            float* __restrict y) {
  matmul_epilogue_f32(params, g_y);
  xdna_add_f32(g_y, resid, y, 32 * 64);
}

}  // extern "C"
