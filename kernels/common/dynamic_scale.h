// dynamic_scale: a dynamic quantize's per-tensor scale computed in pieces, so
// that the cores of ONE launch can produce it (kernels/common/README.md).
//
// Every core that produces part of a float32 tensor folds its tiles into a
// Partial {max|x|, max x, non-finite flag}; one reducer combines the partials
// of all producers and finishes them into Params {scale, 1/scale, flag} with
// EXACTLY the quantize contract's rule (kernels/quantize/quantize.h:
// quant::dynamic_scale, quant::gelu_input_range for neg_limit > 0). max and
// fabs are exact in fp32, so the result does not depend on how the tensor is
// split into tiles or in which order partials are combined: the scale has the
// same float32 bits as the host's whole-tensor pass (emulator/quantize.cpp uses
// finish() too). A NaN or +-inf anywhere sets the flag; the finished params
// then hold scale 1 and the host turns the flag into the quantize contract's
// ValueError (no int8 image exists).
//
// Plain structs of four float32 words (16 bytes: one DMA-friendly object on the
// array; the flag is 0.0f or 1.0f, the fourth word is padding = 0), header-only,
// included unchanged by the host build and the AIE source (aie/dynamic_scale_aie.cc).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>

#include "../quantize/quantize.h"

namespace xdna {
namespace dynscale {

constexpr std::size_t kWords = 4;  // floats per Partial / Params object

struct Partial {
  float max_abs;    // max |x| (0 before any value)
  float max_x;      // max x (-inf before any value)
  float nonfinite;  // 1.0f when a NaN or +-inf was seen, else 0.0f
  float pad;        // 0.0f
};

struct Params {
  float scale;      // max|x| / 127 by quant::dynamic_scale (1.0f when flagged)
  float inv_scale;  // quant::inverse_scale(scale): what quantize multiplies by
  float flag;       // 1.0f: the tensor held NaN or +-inf (no int8 image), else 0.0f
  float pad;        // 0.0f
};

static_assert(sizeof(Partial) == kWords * sizeof(float), "Partial is four float32 words");
static_assert(sizeof(Params) == kWords * sizeof(float), "Params is four float32 words");

// The partial of no values: the identity of combine().
static inline Partial empty() {
  return Partial{0.0f, -std::numeric_limits<float>::infinity(), 0.0f, 0.0f};
}

// Folds n values into p (the same comparisons as the host's max_abs pass:
// fabs, "a > m ? a : m", and !(a <= FLT_MAX) for NaN/inf).
static inline void fold(Partial* p, const float* x, std::size_t n) {
  float ma = p->max_abs, mx = p->max_x;
  bool bad = p->nonfinite != 0.0f;
  for (std::size_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float a = std::fabs(v);
    if (!(a <= std::numeric_limits<float>::max())) bad = true;
    ma = a > ma ? a : ma;
    mx = v > mx ? v : mx;
  }
  p->max_abs = ma;
  p->max_x = mx;
  p->nonfinite = bad ? 1.0f : 0.0f;
}

// The partial of the union of the values behind a and b (commutative, associative).
static inline Partial combine(const Partial& a, const Partial& b) {
  return Partial{a.max_abs > b.max_abs ? a.max_abs : b.max_abs,
                 a.max_x > b.max_x ? a.max_x : b.max_x,
                 (a.nonfinite != 0.0f || b.nonfinite != 0.0f) ? 1.0f : 0.0f, 0.0f};
}

// The quantize contract's dynamic scale of the whole tensor behind p; neg_limit > 0
// (a GELU input): max|x| capped at max(max x, neg_limit) first.
static inline Params finish(const Partial& p, float neg_limit) {
  if (p.nonfinite != 0.0f) return Params{1.0f, 1.0f, 1.0f, 0.0f};
  float m = p.max_abs;
  if (neg_limit > 0.0f) m = quant::gelu_input_range(m, p.max_x, neg_limit);
  const float s = quant::dynamic_scale(m);
  return Params{s, quant::inverse_scale(s), 0.0f, 0.0f};
}

// Combines n partials (n >= 1, consecutive in memory) and finishes them.
static inline Params reduce(const Partial* parts, std::size_t n, float neg_limit) {
  Partial acc = empty();
  for (std::size_t i = 0; i < n; ++i) acc = combine(acc, parts[i]);
  return finish(acc, neg_limit);
}

}  // namespace dynscale
}  // namespace xdna
