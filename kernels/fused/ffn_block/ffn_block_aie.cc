// Core object of the fused ffn_block design: stage sources unchanged, plus
// shims that run two stage functions back to back on one core. The dynamic
// form (design.py build_dynamic) adds ln_matmul's dynamic pieces (the float32
// LayerNorm, the dynamic matmul epilogue, the on-array scale reduction), the
// shared dynamic gelu table (kernels/common/aie/gelu_table_aie.cc) and the fc2
// epilogue below.
#include "../../add/aie/add_aie.cc"
#include "../../common/aie/gelu_table_aie.cc"
#include "../ln_matmul/ln_matmul_aie.cc"

namespace {
alignas(32) int8_t g_h[32 * 64];
alignas(32) float g_y[32 * 64];
}  // namespace

extern "C" {

// matmul int8 epilogue, then the GELU table (fc1 -> gelu), row-major [32, 64].
void fused_epilogue_i8_gelu(const int32_t* __restrict params, const int8_t* __restrict table,
                            int8_t* __restrict h) {
  matmul_epilogue_i8(params, g_h);
  xdna_gelu_i8(g_h, h, table, 32 * 64);
}

// matmul fp32 epilogue, then the residual add (fc2 -> + x), row-major [32, 64].
void fused_epilogue_f32_add(const float* __restrict params, const float* __restrict resid,
                            float* __restrict y) {
  matmul_epilogue_f32(params, g_y);
  xdna_add_f32(g_y, resid, y, 32 * 64);
}

// Dynamic fc2: its A (the gelu output h) has the dynamic gelu's output scale s_out,
// which the gelu reducer broadcast at byte 256 of its object (gelu_table_aie.cc);
// the dynamic matmul epilogue (a_scale * w_scale, ln_matmul_aie.cc) with a_scale =
// s_out, then the residual add.
void ffn_epilogue_f32_dyn_add(const float* __restrict words, const int8_t* __restrict gelu,
                              const float* __restrict resid, float* __restrict y) {
  float a_params[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  memcpy(a_params, gelu + xdna::gelu_table::kScaleAt, sizeof(float));
  ln_matmul_epilogue_f32_dyn(words, a_params, g_y);
  xdna_add_f32(g_y, resid, y, 32 * 64);
}

}  // extern "C"
