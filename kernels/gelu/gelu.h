// GELU arithmetic contract: int8 -> int8 through a 256-entry table.
//
// Included by the host emulator (emulator/gelu.cpp) and by the AIE2 kernel
// (kernels/gelu/aie/gelu_aie.cc). The table is the whole contract: whoever
// applies it (CPU or AIE core) produces the same bytes. The table is built in
// ONE place, build_table() below, from the input/output scales:
//
//   table[i] = sat127( nearbyint( (gelu(double(i - 128) * in_scale) - out_offset)
//                                 / out_scale ) )
//
// out_offset (0 unless given) makes the output code stand for
// q * out_scale + out_offset: GELU's outputs lie in [-0.17, max], so a
// symmetric int8 range would leave the negative half of the codes unused; the
// compiler centres the range and folds the offset into the consuming matmul's
// bias (kernels/gelu/README.md). The table is still the whole contract.
//
// in double precision, rounding half to even; index i = q + 128, so entry 0
// (q = -128, never produced by the narrow-range quantizer) is defined by the
// same formula but unused.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace xdna {
namespace gelu {

constexpr int kTableSize = 256;
constexpr int kTableOffset = 128;  // table index = q + 128

// Real GELU in double: exact erf form, or the tanh approximation
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
inline double gelu_real(double x, bool tanh_approx) {
  if (tanh_approx) {
    const double k = 0.7978845608028654;  // sqrt(2 / pi)
    const double inner = k * (x + 0.044715 * x * x * x);
    return 0.5 * x * (1.0 + std::tanh(inner));
  }
  return 0.5 * x * (1.0 + std::erf(x * 0.7071067811865476));  // x / sqrt(2)
}

inline int8_t quantize_double(double v) {
  const double r = std::nearbyint(v);  // FE_TONEAREST: half to even
  if (r >= 127.0) return 127;
  if (r <= -127.0) return -127;
  return static_cast<int8_t>(r);
}

// Builds the 256-entry table. in_scale, out_scale > 0 and out_offset finite
// (checked by callers).
inline void build_table(float in_scale, float out_scale, bool tanh_approx, int8_t* table,
                        float out_offset = 0.0f) {
  const double si = static_cast<double>(in_scale);
  const double so = static_cast<double>(out_scale);
  const double off = static_cast<double>(out_offset);
  for (int i = 0; i < kTableSize; ++i) {
    const double x = static_cast<double>(i - kTableOffset) * si;
    table[i] = quantize_double((gelu_real(x, tanh_approx) - off) / so);
  }
}

// Dynamic mode (kernel_version 2): the output scale covers the GELU of the codes
// actually present, qmin..qmax (the input's smallest and largest code):
//   out_scale = float( max_{q = qmin..qmax} |gelu(q s)| / 127 )   (double, then fp32),
// or 1.0f when that is not a positive finite float. Why not |gelu(+-127 s)|: a
// GELU input's range is lopsided (tiny.en: -16.5 .. 8.2), and gelu(-16.5) ~ 0,
// so the old rule spent half the output codes on values no output takes.
inline float dynamic_out_scale(float in_scale, int qmin, int qmax, bool tanh_approx) {
  const double s = static_cast<double>(in_scale);
  double m = 0.0;
  for (int q = qmin; q <= qmax; ++q) {
    const double v = std::fabs(gelu_real(static_cast<double>(q) * s, tanh_approx));
    m = v > m ? v : m;
  }
  const float out = static_cast<float>(m / 127.0);
  return (out > 0.0f && std::isfinite(out)) ? out : 1.0f;
}

// The smallest and largest code of x (n > 0).
inline void code_range(const int8_t* x, std::size_t n, int* qmin, int* qmax) {
  int lo = 127, hi = -128;
  for (std::size_t i = 0; i < n; ++i) {
    const int v = x[i];
    lo = v < lo ? v : lo;
    hi = v > hi ? v : hi;
  }
  *qmin = lo;
  *qmax = hi;
}

// The kernel proper: y[i] = table[x[i] + 128].
inline void apply_table(const int8_t* x, int8_t* y, std::size_t n, const int8_t* table) {
  for (std::size_t i = 0; i < n; ++i) y[i] = table[static_cast<int>(x[i]) + kTableOffset];
}

}  // namespace gelu
}  // namespace xdna
