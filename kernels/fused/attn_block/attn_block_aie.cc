// Core object of the fused attn_block design: stage sources unchanged, plus
// the shim that runs the out-projection epilogue and the residual add on one
// core. The attention stage's core functions come from its own source. The
// dynamic form (design.py build_dynamic) adds the on-array scale reduction
// (common/aie/dynamic_scale_aie.cc), the attention-side shims of
// attn_dynamic_aie.cc and the dynamic epilogue below.
#include "../../add/aie/add_aie.cc"
#include "../../attention/aie/attention_aie.cc"
#include "../../common/aie/dynamic_scale_aie.cc"
#include "../../matmul/aie/matmul_aie.cc"
#include "attn_dynamic_aie.cc"

namespace {
alignas(32) float g_y[32 * 64];
alignas(32) float g_dyn_words[2 * 64];
}  // namespace

extern "C" {

// matmul fp32 epilogue, then the residual add, row-major [32, 64].
void fused_epilogue_f32_add(const float* __restrict params, const float* __restrict resid,
                            float* __restrict y) {
  matmul_epilogue_f32(params, g_y);
  xdna_add_f32(g_y, resid, y, 32 * 64);
}

// The dynamic form's out-projection epilogue: words = (w_scale, bias) of this tile's
// 64 channels, scale[n] = a_scale * w_scale[n] (one fp32 multiply, as the host runtime
// computes it for a one-stage dynamic matmul; a_scale = o's reduced scale, params[0]),
// then exactly fused_epilogue_f32_add (matmul_epilogue_f32, then the residual add).
void attn_epilogue_f32_dyn_add(const float* __restrict words, const float* __restrict params,
                               const float* __restrict resid, float* __restrict y) {
  const float a_scale = params[0];
  for (unsigned c = 0; c < 64; ++c) {
    g_dyn_words[c] = a_scale * words[c];
    g_dyn_words[64 + c] = words[64 + c];
  }
  fused_epilogue_f32_add(g_dyn_words, resid, y);
}

}  // extern "C"
