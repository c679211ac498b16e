// Host kernels of quantize (float32 -> int8, static or dynamic per-tensor
// scale) and dequantize (int8 -> float32), split over the thread pool.
#include "quantize.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <mutex>

#include "cpu_features.h"
#include "parallel.h"
#include "common/dynamic_scale.h"
#include "quantize/quantize.h"

namespace xdna {

namespace {
constexpr std::size_t kGrain = 1 << 16;

bool use_avx2() {
#if defined(XDNA_NO_X86_PATHS)
  return false;
#else
  return active_isa() != Isa::kPortable;  // every faster path implies AVX2
#endif
}
}  // namespace

bool quantize_static(const float* x, std::size_t n, float scale, int8_t* q) {
  const float inv = quant::inverse_scale(scale);
  std::atomic<bool> nan{false};
  const bool avx2 = use_avx2();
  parallel_for(n, kGrain, [&](std::size_t b, std::size_t e) {
#if !defined(XDNA_NO_X86_PATHS)
    if (avx2) {
      if (!quantize_chunk_avx2(x + b, e - b, inv, q + b)) nan.store(true);
      return;
    }
#endif
    bool local_nan = false;
    for (std::size_t i = b; i < e; ++i) {
      const float v = x[i];
      if (std::isnan(v)) {
        local_nan = true;
        q[i] = 0;
      } else {
        q[i] = quant::quantize_one(v, inv);
      }
    }
    if (local_nan) nan.store(true);
  });
  return !nan.load();
}

float max_abs(const float* x, std::size_t n, bool* finite) {
  std::mutex mu;
  float best = 0.0f;
  bool ok = true;
  const bool avx2 = use_avx2();
  parallel_for(n, kGrain, [&](std::size_t b, std::size_t e) {
    float m = 0.0f;
    bool local_ok = true;
#if !defined(XDNA_NO_X86_PATHS)
    if (avx2) {
      m = max_abs_chunk_avx2(x + b, e - b, &local_ok);
    } else
#endif
    {
      for (std::size_t i = b; i < e; ++i) {
        const float a = std::fabs(x[i]);
        if (!(a <= 3.4028234663852886e38f)) local_ok = false;  // NaN or inf
        m = a > m ? a : m;
      }
    }
    std::lock_guard<std::mutex> lk(mu);
    best = std::max(best, m);
    ok = ok && local_ok;
  });
  *finite = ok;
  return best;
}

float max_value(const float* x, std::size_t n) {
  std::mutex mu;
  float best = x[0];
  parallel_for(n, kGrain, [&](std::size_t b, std::size_t e) {
    float m = x[b];
    for (std::size_t i = b + 1; i < e; ++i) m = x[i] > m ? x[i] : m;
    std::lock_guard<std::mutex> lk(mu);
    best = std::max(best, m);
  });
  return best;
}

float dynamic_quantize_scale(const float* x, std::size_t n, float neg_limit, bool* finite) {
  // The whole tensor as ONE partial, finished by the rule the array's reducer uses
  // (common/dynamic_scale.h), so both sides choose the scale the same way.
  dynscale::Partial p = dynscale::empty();
  p.max_abs = max_abs(x, n, finite);
  p.nonfinite = *finite ? 0.0f : 1.0f;
  if (*finite && neg_limit > 0.0f) p.max_x = max_value(x, n);
  return dynscale::finish(p, neg_limit).scale;
}

void dequantize(const int8_t* q, std::size_t n, float scale, float* x) {
  parallel_for(n, kGrain, [&](std::size_t b, std::size_t e) {
    for (std::size_t i = b; i < e; ++i) x[i] = quant::dequantize_one(q[i], scale);
  });
}

}  // namespace xdna
