// Core object of the fused conv_frontend design: the conv1d and gelu stage
// sources unchanged, plus shims running the stage functions back to back.
// The fp32 -> gelu -> fp32 glue is exactly the quantize -> gelu -> dequantize
// stage composition (shared epilogue quantize / dequantize with bias 0).
#include "../../common/epilogue.h"
#include "../../add/aie/add_aie.cc"
#include "../../conv1d/aie/conv1d_aie.cc"
#include "../../gelu/aie/gelu_aie.cc"

namespace {
alignas(32) float g_blk[8 * 8];
}  // namespace

extern "C" {

// gs = {1 / gelu_in_scale, gelu_out_scale}
static void frontend_gelu(float* y, const int8_t* table, const float* gs, int32_t n) {
  for (int32_t i = 0; i < n; ++i) {
    const int8_t q = xdna::quantize(y[i], gs[0]);
    const int8_t g = table[static_cast<int32_t>(q) + xdna::gelu::kTableOffset];
    y[i] = xdna::dequantize(g, gs[1], 0.0f);
  }
}

// conv block [nco, nt] -> gelu glue.
void frontend_conv_gelu(const int8_t* __restrict w, const float* __restrict w_scale,
                        const float* __restrict bias, const float* __restrict scal,
                        const int8_t* __restrict table, const float* __restrict gs,
                        float* __restrict y, int32_t K, int32_t co0, int32_t nco, int32_t nt) {
  xdna_conv1d_block(w, w_scale, bias, scal, y, K, co0, nco, nt);
  frontend_gelu(y, table, gs, nco * nt);
}

// conv block -> gelu glue -> + positional embedding block. The block is [nco, nt];
// emb arrives as the position table's rows, [nt, nco] (the add stage's constant b,
// row-major [T, D] in WEIGHTS), so it is read transposed: the same fp32 add as
// xdna_add_f32, element by element.
void frontend_conv_gelu_add(const int8_t* __restrict w, const float* __restrict w_scale,
                            const float* __restrict bias, const float* __restrict scal,
                            const int8_t* __restrict table, const float* __restrict gs,
                            const float* __restrict emb, float* __restrict y, int32_t K,
                            int32_t co0, int32_t nco, int32_t nt) {
  xdna_conv1d_block(w, w_scale, bias, scal, g_blk, K, co0, nco, nt);
  frontend_gelu(g_blk, table, gs, nco * nt);
  for (int32_t co = 0; co < nco; ++co) {
    for (int32_t t = 0; t < nt; ++t) {
      y[co * nt + t] = g_blk[co * nt + t] + emb[t * nco + co];
    }
  }
}

}  // extern "C"
