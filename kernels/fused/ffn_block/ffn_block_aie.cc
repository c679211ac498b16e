// Core object of the fused ffn_block design: stage sources unchanged, plus
// shims that run two stage functions back to back on one core.
#include "../../add/aie/add_aie.cc"
#include "../../gelu/aie/gelu_aie.cc"
#include "../../layernorm/aie/layernorm_aie.cc"
#include "../../matmul/aie/matmul_aie.cc"

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

}  // extern "C"
