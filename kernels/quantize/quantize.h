// quantize / dequantize: the arithmetic contract of the float32 <-> int8
// boundary kernels, in portable C++ (host emulator and aie/quantize_aie.cc).
//
//   quantize:   q = sat127(rint(x * inv_scale)),  inv_scale = 1.0f / scale  (fp32)
//               (the shared epilogue xdna::quantize; round half to even)
//   dynamic:    scale = max|x| / 127.0f (fp32 division); 1.0f when that is 0
//               or so small that its fp32 reciprocal overflows
//   dynamic with neg_limit L (the input of a GELU, kernel_version 2):
//               scale = min(max|x|, max(max x, L)) / 127.0f, same 1.0f rule:
//               the negative side saturates below -max(max x, L); GELU maps all
//               of it to ~0 (|gelu(-4)| < 1.3e-4), so those codes were wasted
//   dequantize: x = float(q) * scale  (one fp32 multiply)
// NaN inputs have no int8 image: the host kernel rejects them (ValueError).
#pragma once
#include <cmath>
#include <cstdint>

#include "../common/epilogue.h"

namespace xdna {
namespace quant {

inline float inverse_scale(float scale) { return 1.0f / scale; }

inline float dynamic_scale(float max_abs) {
  const float s = max_abs / 127.0f;
  if (!(s > 0.0f) || !std::isfinite(1.0f / s)) return 1.0f;
  return s;
}

// The range a GELU input's dynamic scale covers (neg_limit > 0): max|x| capped at
// max(max x, neg_limit), in fp32 (min/max are exact).
inline float gelu_input_range(float max_abs, float max_x, float neg_limit) {
  const float hi = max_x > neg_limit ? max_x : neg_limit;
  return max_abs < hi ? max_abs : hi;
}

inline int8_t quantize_one(float x, float inv_scale) { return quantize(x, inv_scale); }

inline float dequantize_one(int8_t q, float scale) { return static_cast<float>(q) * scale; }

}  // namespace quant
}  // namespace xdna
