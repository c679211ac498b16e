// AIE2 (npu1) core function of the LayerNorm kernel: one call normalizes
// `rows` rows of length C held in the core's local memory.
//
// Bit-exactness with the host comes from calling layernorm.h: the statistics
// are integer sums (exact in any order), the per-row scalars are IEEE double
// (software floating point on AIE2: a few hundred cycles per row, small next
// to the C-element loops), and the per-element path is the same sequence of
// IEEE ops. Everything is scalar so no vector rounding behaviour can differ.
#include <cstdint>

#include "../layernorm.h"

namespace {
constexpr int kMaxLocalC = 1280;  // largest Whisper d_model (large-v3); 5 KiB + 5 KiB
int32_t g_fixed[kMaxLocalC];      // fixed-point row
float g_row[kMaxLocalC];          // fp32 row before int8 quantization
}  // namespace

extern "C" {

// mode bit 0: x is int8 (else fp32); bit 1: y is int8 (else fp32).
// gb = gamma[C] then beta[C]. scal = {epsilon, in_scale, inv_out_scale, unused},
// delivered per launch from the WEIGHTS block after gamma/beta (the layer's device
// constants, kernel_specs/layernorm.py; scales differ per layer).
void xdna_layernorm(const void* __restrict x, const float* __restrict gb, void* __restrict y,
                    const float* __restrict scal, int32_t rows, int32_t C, int32_t mode) {
  namespace ln = xdna::layernorm;
  const bool in_i8 = mode & 1, out_i8 = mode & 2;
  const float eps = scal[0], in_scale = scal[1], inv_out = scal[2];
  const float* gamma = gb;
  const float* beta = gb + C;
  for (int32_t r = 0; r < rows; ++r) {
    ln::RowStats st;
    float* yrow = out_i8 ? g_row : static_cast<float*>(y) + r * C;
    if (in_i8) {
      const int8_t* xr = static_cast<const int8_t*>(x) + r * C;
      st = ln::stats_i8(xr, C, in_scale, eps, g_fixed);
      ln::normalize_i8in_f32(xr, st, gamma, beta, yrow, C);
    } else {
      const float* xr = static_cast<const float*>(x) + r * C;
      st = ln::stats_f32(xr, C, eps, g_fixed);
      ln::normalize_f32(xr, st, gamma, beta, yrow, C);
    }
    if (out_i8) {
      int8_t* q = static_cast<int8_t*>(y) + r * C;
      if (st.finite) {
        ln::quantize_row(yrow, inv_out, q, C);
      } else {
        for (int32_t i = 0; i < C; ++i) q[i] = 0;
      }
    }
  }
}

}  // extern "C"
