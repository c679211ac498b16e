// Core object of the fused conv_frontend design: the conv1d and gelu stage
// sources unchanged, plus shims running the stage functions back to back.
// The fp32 -> gelu -> fp32 glue is exactly the quantize -> gelu -> dequantize
// stage composition (shared epilogue quantize / dequantize with bias 0).
// The dynamic variant (design.py build_dynamic) adds the on-device scale
// reduction (kernels/common/aie/dynamic_scale_aie.cc), the shared dynamic gelu
// table (kernels/common/aie/gelu_table_aie.cc, which includes both it and the gelu
// stage source) and the pass shims below.
#include "../../common/epilogue.h"
#include "../../add/aie/add_aie.cc"
#include "../../common/aie/gelu_table_aie.cc"
#include "../../conv1d/aie/conv1d_aie.cc"

namespace {
alignas(32) float g_blk[8 * 8];
constexpr int32_t kGeluScaleAt = xdna::gelu_table::kScaleAt;  // gelu object: table, s_out
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

// ---- dynamic variant: element passes over a float tensor streamed back from OUT ----
// params = the broadcast {scale, 1/scale, flag, 0} of the tensor's reduction
// (dynamic_scale.h); a flagged tensor quantizes to zeros (the host raises on the flag).

// The code range of one row chunk of conv2's output: the shared code fold
// (gelu_table_aie.cc) under its own symbol, for the other chunk size.
void frontend_codes_fold_row(const float* __restrict x, const float* __restrict params,
                             int32_t* __restrict range, int32_t n) {
  xdna_gelu_codes_fold(x, params, range, n);
}

// Folds one row chunk into a partial (xdna_dynscale_fold for the row chunk size).
void frontend_fold_row(const float* __restrict x, float* __restrict partial, int32_t n) {
  xdna_dynscale_fold(x, partial, n);
}

// quantize (params) -> gelu table -> dequantize (s_out) of n values, one element.
static inline float frontend_gelu_one(float x, const float* params, const int8_t* gelu,
                                      float so) {
  const int8_t q = params[2] != 0.0f ? 0 : xdna::quant::quantize_one(x, params[1]);
  const int8_t g = gelu[static_cast<int32_t>(q) + xdna::gelu::kTableOffset];
  return xdna::quant::dequantize_one(g, so);
}

// conv1's chunk -> gelu glue -> h chunk, folded into the partial of h's reduction
// (conv2's dynamic input scale).
void frontend_gelu_fold(const float* __restrict x, const float* __restrict params,
                        const int8_t* __restrict gelu, float* __restrict y,
                        float* __restrict partial, int32_t n) {
  float so;
  memcpy(&so, gelu + kGeluScaleAt, sizeof so);
  for (int32_t i = 0; i < n; ++i) y[i] = frontend_gelu_one(x[i], params, gelu, so);
  xdna_dynscale_fold(y, partial, n);
}

// conv2's row chunk -> gelu glue -> + the position table's row chunk (xdna_add_f32's
// fp32 add) -> y.
void frontend_gelu_add_row(const float* __restrict x, const float* __restrict emb,
                           const float* __restrict params, const int8_t* __restrict gelu,
                           float* __restrict y, int32_t n) {
  float so;
  memcpy(&so, gelu + kGeluScaleAt, sizeof so);
  for (int32_t i = 0; i < n; ++i) y[i] = frontend_gelu_one(x[i], params, gelu, so) + emb[i];
}

}  // extern "C"
