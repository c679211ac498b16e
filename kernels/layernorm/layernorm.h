// LayerNorm arithmetic contract (one row of length C at a time).
//
// Included by the host emulator (emulator/layernorm*.cpp) and by the AIE2 kernel
// (kernels/layernorm/aie/layernorm_aie.cc). Statistics are computed from
// INTEGERS so they are exact and independent of summation order: every path
// (scalar, SIMD, AIE vector unit, numpy) gets the same bits.
//
//   1. Fixed-point row v[i] (int32):
//        int8 input : v[i] = q[i],                           unit u = in_scale
//        fp32 input : E = exponent of max|x| (max|x| < 2^E),   unit u = 2^(E-24)
//                     v[i] = nearbyint(double(x[i]) * 2^(24-E))  (|v| <= 2^24)
//      i.e. 24 fractional bits below the row's leading power of two.
//   2. S1 = sum v (int64, exact);  mv = floor((2*S1 + C) / (2*C))  (integer mean,
//      round half up);  S2 = sum (v - mv)^2 (int64, exact; C <= 8192 keeps it
//      below 2^63);  r = S1 - C*mv.
//   3. Per-row scalars in IEEE double, in this order:
//        var_v = max(0, (double(S2) - double(r*r) / C) / C)
//        mean  = (double(S1) / C) * u
//        var   = (var_v * u) * u
//        rstd  = 1.0 / sqrt(var + double(eps))
//   4. Per element: c = double(x[i]) - mean   (int8: double(q[i]) * u - mean)
//                   n = float(c * rstd)
//                   y = n * gamma[i] + beta[i]      (two fp32 ops, no FMA)
//      int8 output: sat127(nearbyint(y * inv_out_scale)) (shared epilogue quantize).
//   A row holding Inf/NaN yields NaN (fp32 out) / 0 (int8 out). eps > 0 (so rstd is finite).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "../common/epilogue.h"

namespace xdna {
namespace layernorm {

constexpr int kFracBits = 24;
constexpr int kMaxC = 8192;

struct RowStats {
  double mean;
  double rstd;
  double unit;  // u: real value of one fixed-point step
  bool finite;
};

// nearbyint for |v| < 2^51 in the default rounding mode (half to even), with
// two plain IEEE double adds: vectorises on every target and needs no libm
// (the baseline x86-64 build has no SSE4.1 roundpd). Exactly equal to
// nearbyint here because |v| <= 2^24.
inline double round_half_even(double v) {
  const double magic = 6755399441055744.0;  // 1.5 * 2^52
  return (v + magic) - magic;
}

inline int64_t floor_div(int64_t a, int64_t b) {  // b > 0
  int64_t q = a / b;
  if ((a % b != 0) && (a < 0)) --q;
  return q;
}

// Steps 2-3 from the fixed-point row v.
inline RowStats stats_from_fixed(const int32_t* v, int C, double unit, float eps) {
  int64_t s1 = 0;
  for (int i = 0; i < C; ++i) s1 += v[i];
  const int64_t mv = floor_div(2 * s1 + C, 2 * static_cast<int64_t>(C));
  int64_t s2 = 0;
  for (int i = 0; i < C; ++i) {
    const int64_t d = static_cast<int64_t>(v[i]) - mv;
    s2 += d * d;
  }
  const int64_t r = s1 - static_cast<int64_t>(C) * mv;
  const double dc = static_cast<double>(C);
  double var_v = (static_cast<double>(s2) - static_cast<double>(r * r) / dc) / dc;
  if (var_v < 0.0) var_v = 0.0;
  RowStats st;
  st.unit = unit;
  st.mean = (static_cast<double>(s1) / dc) * unit;
  const double var = (var_v * unit) * unit;
  st.rstd = 1.0 / std::sqrt(var + static_cast<double>(eps));
  st.finite = true;
  return st;
}

// Step 1 for fp32 input. v must hold C int32. Returns stats; finite=false when
// the row holds Inf/NaN.
inline RowStats stats_f32(const float* x, int C, float eps, int32_t* v) {
  uint32_t amax_bits = 0;
  for (int i = 0; i < C; ++i) {
    uint32_t b;
    std::memcpy(&b, &x[i], 4);
    b &= 0x7fffffffu;
    amax_bits = b > amax_bits ? b : amax_bits;
  }
  if (amax_bits >= 0x7f800000u) return RowStats{0.0, 0.0, 0.0, false};
  if (amax_bits == 0) {  // all zeros: mean 0, var 0
    for (int i = 0; i < C; ++i) v[i] = 0;
    return stats_from_fixed(v, C, 1.0, eps);
  }
  float amax;
  std::memcpy(&amax, &amax_bits, 4);
  int e = 0;
  std::frexp(amax, &e);  // amax = f * 2^e, f in [0.5, 1)
  const double up = std::ldexp(1.0, kFracBits - e);
  for (int i = 0; i < C; ++i)
    v[i] = static_cast<int32_t>(round_half_even(static_cast<double>(x[i]) * up));
  return stats_from_fixed(v, C, std::ldexp(1.0, e - kFracBits), eps);
}

inline RowStats stats_i8(const int8_t* q, int C, float in_scale, float eps, int32_t* v) {
  for (int i = 0; i < C; ++i) v[i] = q[i];
  return stats_from_fixed(v, C, static_cast<double>(in_scale), eps);
}

// Step 4, fp32 output.
inline void normalize_f32(const float* x, const RowStats& st, const float* gamma,
                          const float* beta, float* y, int C) {
  if (!st.finite) {
    for (int i = 0; i < C; ++i) y[i] = std::numeric_limits<float>::quiet_NaN();
    return;
  }
  for (int i = 0; i < C; ++i) {
    const float n = static_cast<float>((static_cast<double>(x[i]) - st.mean) * st.rstd);
    const float g = n * gamma[i];
    y[i] = g + beta[i];
  }
}

inline void normalize_i8in_f32(const int8_t* q, const RowStats& st, const float* gamma,
                               const float* beta, float* y, int C) {
  for (int i = 0; i < C; ++i) {
    const double xv = static_cast<double>(q[i]) * st.unit;
    const float n = static_cast<float>((xv - st.mean) * st.rstd);
    const float g = n * gamma[i];
    y[i] = g + beta[i];
  }
}

// int8 output from an fp32 row already normalized (y), with the shared quantizer;
// a NaN element (only possible from Inf * 0 with extreme gamma) becomes 0.
inline void quantize_row(const float* y, float inv_out_scale, int8_t* q, int C) {
  for (int i = 0; i < C; ++i) q[i] = y[i] == y[i] ? ::xdna::quantize(y[i], inv_out_scale) : 0;
}

}  // namespace layernorm
}  // namespace xdna
