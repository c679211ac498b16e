// xdna-ep shared epilogue: the ONE definition of how int32 accumulators become
// int8 or float32 outputs. Every host path (portable, AVX2, AVX-512 VNNI, AMX)
// and every AIE kernel source calls these functions, so bit-exactness between
// the emulator and the NPU is decided here and nowhere else.
//
// Byte-level contract (see kernels/common/README.md):
//   * int8 tensors use the symmetric "narrow" range [-127, 127]; zero point 0.
//   * requantize: y = sat127( (acc * m + 2^(e-1)) >> e )   (int64 product,
//     arithmetic shift, round half toward +infinity), m in [2^30, 2^31), 1<=e<=62.
//   * dequantize: y = (float)acc * scale + bias        (two IEEE-754 fp32 ops,
//     round-to-nearest-even, never contracted into an FMA: -ffp-contract=off).
//   * quantize:   q = sat127( rint(x * inv_scale) )   (fp32 multiply, round half
//     to even), inv_scale = 1.0f / scale computed in fp32.
//
// The functions are `static inline` on purpose: ISA-specific translation units
// (compiled with -mavx2 / -mavx512*) include this header, and a plain `inline`
// function would be emitted as a weak symbol that the linker may pick for the
// portable path too, putting AVX-512 instructions on an AVX2-only CPU.
#pragma once
#include <cmath>
#include <cstdint>

namespace xdna {

constexpr int32_t kInt8Max = 127;
constexpr int32_t kInt8Min = -127;

struct Requant {
  int32_t multiplier;  // in [2^30, 2^31), or 0 for an all-zero scale
  int32_t shift;       // total right shift e, 1..62
};

static inline int8_t saturate_int8(int64_t v) {
  return static_cast<int8_t>(v > kInt8Max ? kInt8Max : (v < kInt8Min ? kInt8Min : v));
}

// Real scale s > 0  ->  (m, e) with s ~= m * 2^-e. Computed once at compile
// time on the host (double precision); the kernels only ever see (m, e).
static inline Requant make_requant(double scale) {
  Requant r{0, 31};
  if (!(scale > 0.0) || !std::isfinite(scale)) return r;
  int exp2 = 0;
  double frac = std::frexp(scale, &exp2);  // scale = frac * 2^exp2, frac in [0.5, 1)
  int64_t m = static_cast<int64_t>(std::llround(frac * 2147483648.0));  // frac * 2^31
  if (m == (int64_t{1} << 31)) {  // rounding reached 2^31
    m >>= 1;
    ++exp2;
  }
  int e = 31 - exp2;  // s = m * 2^(exp2 - 31)
  if (e < 1) {        // scale >= 2^30: clamp (never produced by real quantizers)
    e = 1;
    m = (int64_t{1} << 31) - 1;
  }
  while (e > 62) {  // tiny scale: drop precision until the shift fits
    m >>= 1;
    --e;
    if (m == 0) return Requant{0, 62};
  }
  r.multiplier = static_cast<int32_t>(m);
  r.shift = e;
  return r;
}

static inline int8_t requantize(int32_t acc, Requant rq) {
  const int64_t p = static_cast<int64_t>(acc) * rq.multiplier;
  const int64_t rounded = (p + (int64_t{1} << (rq.shift - 1))) >> rq.shift;
  return saturate_int8(rounded);
}

static inline float dequantize(int32_t acc, float scale, float bias) {
  const float a = static_cast<float>(acc);
  const float prod = a * scale;
  return prod + bias;
}

static inline int8_t quantize(float x, float inv_scale) {
  const float v = std::nearbyint(x * inv_scale);  // default FE_TONEAREST: half to even
  if (v >= 127.0f) return 127;
  if (v <= -127.0f) return -127;
  return static_cast<int8_t>(v);
}

}  // namespace xdna
