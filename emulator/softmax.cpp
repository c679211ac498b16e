// Host build of the softmax kernel: rows split over the thread pool; every
// row runs the integer contract of kernels/softmax/softmax.h, so the result
// does not depend on the SIMD path or the thread count.
#include <algorithm>
#include <vector>

#include "../kernels/softmax/softmax.h"
#include "cpu_features.h"
#include "parallel.h"
#include "softmax_host.h"

namespace xdna {

namespace {

// Rows [r0, r1). The same inline integer code is compiled once per ISA (GCC
// target attributes) so the compiler may vectorise it; integer results, and
// fp32 multiply + round-to-nearest without contraction, are the same bytes on
// every path.
#define XDNA_SOFTMAX_BODY                                                                  \
  const int64_t n = a.n;                                                                   \
  for (std::size_t r = r0; r < r1; ++r) {                                                  \
    const int8_t* x = a.x + static_cast<int64_t>(r) * n;                                   \
    int64_t valid = n;                                                                     \
    if (a.causal) {                                                                        \
      const int64_t q = static_cast<int64_t>(r) % a.query_len;                             \
      valid = std::min<int64_t>(n, std::max<int64_t>(0, q + a.past_len + 1));              \
    }                                                                                      \
    for (int64_t j = 0; j < valid; ++j) z[j] = lut[x[j] + 128];                            \
    for (int64_t j = valid; j < n; ++j) z[j] = softmax::kExcludedLogit;                    \
    if (a.mask) {                                                                          \
      const float* m = a.mask + a.mask_row_offset[r];                                      \
      for (int64_t j = 0; j < valid; ++j)                                                  \
        z[j] = softmax::add_mask(z[j], softmax::mask_logit(m[j * a.mask_col_stride]));     \
    }                                                                                      \
    softmax::normalize_row(z, static_cast<int>(n), work, a.out + static_cast<int64_t>(r) * n); \
  }

#define XDNA_SOFTMAX_ARGS                                                               \
  const SoftmaxArgs &a, const int32_t *lut, std::size_t r0, std::size_t r1, int32_t *z, \
      uint32_t *work

void rows_portable(XDNA_SOFTMAX_ARGS) { XDNA_SOFTMAX_BODY }

#if !defined(XDNA_NO_X86_PATHS) && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
__attribute__((target("avx2,fma"))) void rows_avx2(XDNA_SOFTMAX_ARGS) { XDNA_SOFTMAX_BODY }
__attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl"))) void rows_avx512(
    XDNA_SOFTMAX_ARGS) {
  XDNA_SOFTMAX_BODY
}
#define XDNA_HAVE_X86_SOFTMAX 1
#endif

void rows(XDNA_SOFTMAX_ARGS) {
#ifdef XDNA_HAVE_X86_SOFTMAX
  switch (active_isa()) {
    case Isa::kAvx2:
      return rows_avx2(a, lut, r0, r1, z, work);
    case Isa::kAvx512Vnni:
    case Isa::kAmx:
      return rows_avx512(a, lut, r0, r1, z, work);
    default:
      break;
  }
#endif
  rows_portable(a, lut, r0, r1, z, work);
}

}  // namespace

void softmax_int8(const SoftmaxArgs& a) {
  if (a.rows <= 0 || a.n <= 0) return;
  // score_logit of every int8 value, looked up instead of recomputed (same bits).
  int32_t lut[256];
  for (int v = -128; v < 128; ++v) lut[v + 128] = softmax::score_logit(v, a.logit_rq);
  const std::size_t grain = static_cast<std::size_t>(std::max<int64_t>(1, 16384 / a.n));
  parallel_for(static_cast<std::size_t>(a.rows), grain, [&](std::size_t r0, std::size_t r1) {
    std::vector<int32_t> z(static_cast<std::size_t>(a.n));
    std::vector<uint32_t> work(static_cast<std::size_t>(a.n));
    rows(a, lut, r0, r1, z.data(), work.data());
  });
}

}  // namespace xdna
