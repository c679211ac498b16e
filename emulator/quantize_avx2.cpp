// AVX2 chunks of the quantize kernels (8 floats per step). Lane for lane the
// same arithmetic as quant::quantize_one (kernels/quantize/quantize.h):
// fp32 multiply by the fp32 reciprocal, round in the current rounding mode
// (round-to-nearest-even, like std::nearbyint), saturate to [-127, 127].
// Raw loops only: no STL in ISA-flagged translation units.
#if !defined(XDNA_NO_X86_PATHS)
#include <immintrin.h>

#include <cstring>

#include "quantize.h"
#include "quantize/quantize.h"

namespace xdna {

bool quantize_chunk_avx2(const float* x, std::size_t n, float inv_scale, int8_t* q) {
  const __m256 inv = _mm256_set1_ps(inv_scale);
  const __m256 hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
  __m256 nan_any = _mm256_setzero_ps();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    nan_any = _mm256_or_ps(nan_any, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    __m256 r = _mm256_round_ps(_mm256_mul_ps(v, inv), _MM_FROUND_CUR_DIRECTION);
    r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);  // NaN lanes become -127 here ...
    const __m256i i32 = _mm256_cvtps_epi32(r);
    const __m256i w16 = _mm256_packs_epi32(i32, i32);
    const __m256i w8 = _mm256_packs_epi16(w16, w16);
    const int32_t a = _mm_cvtsi128_si32(_mm256_castsi256_si128(w8));
    const int32_t b = _mm_cvtsi128_si32(_mm256_extracti128_si256(w8, 1));
    std::memcpy(q + i, &a, 4);
    std::memcpy(q + i + 4, &b, 4);
  }
  bool nan = _mm256_movemask_ps(nan_any) != 0;
  for (; i < n; ++i) {
    if (x[i] != x[i]) {
      nan = true;
      q[i] = 0;
    } else {
      q[i] = quant::quantize_one(x[i], inv_scale);
    }
  }
  return !nan;  // ... and the caller rejects the whole call when any lane was NaN
}

float max_abs_chunk_avx2(const float* x, std::size_t n, bool* finite) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 fmax = _mm256_set1_ps(3.4028234663852886e38f);
  __m256 m = _mm256_setzero_ps(), bad = _mm256_setzero_ps();
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + i), abs_mask);
    bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, fmax, _CMP_NLE_UQ));  // > max or NaN
    m = _mm256_max_ps(m, a);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float best = 0.0f;
  for (float v : lanes) best = v > best ? v : best;
  bool ok = _mm256_movemask_ps(bad) == 0;
  for (; i < n; ++i) {
    const float a = x[i] < 0 ? -x[i] : x[i];
    if (!(a <= 3.4028234663852886e38f)) ok = false;
    best = a > best ? a : best;
  }
  *finite = ok;
  return best;
}

}  // namespace xdna
#endif  // XDNA_NO_X86_PATHS
