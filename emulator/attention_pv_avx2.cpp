// AVX2 path of attention's P.V product with whole 14-bit weights.
//
// Why: the contract (kernels/attention/attention.h) splits each weight w (0..16383)
// into int8 halves hi = w >> 7 and lo = w & 127 so that an NPU core (and the int8
// GEMM) can multiply them, and combines the two exact int32 products as
// acc_hi * 128 + acc_lo in int64. Without VNNI that costs two s8 x s8 GEMMs of
// vpmaddubsw + vpmaddwd each. Here w and v are int16 and one vpmaddwd computes
// w0 * v0 + w1 * v1 for a key pair: half the multiplies for the same integer,
//   sum_j w_j v_j = sum_j (128 hi_j + lo_j) v_j = 128 acc_hi + acc_lo   (exact),
// so the output bytes cannot change.
//
// Range: |w v| <= 16383 * 127 < 2^21, a vpmaddwd lane |w0 v0 + w1 v1| < 2^22; a lane
// adds kChunkPairs = 256 key pairs (< 2^30, inside int32) before it is added to the
// int64 accumulator, so any number of keys stays exact.
//
// No STL here (see int8_gemm_packed.h: ISA translation units stay free of inline
// STL instantiations).
#if !defined(XDNA_NO_X86_PATHS)
#include <immintrin.h>

#include <cstring>

#include "attention_pv.h"

namespace xdna {
namespace {

constexpr int kChunkPairs = 256;  // key pairs per int32 partial sum (see above)
constexpr int kCols = 16;         // output columns per register block (2 ymm)
constexpr int kSkipPairs = 8;     // key pairs per zero-weight test (one ymm of int16 per row)

inline int32_t load_pair(const int16_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Rows [0, MR) of w (row stride ldw int16) x columns [c0, c0 + 16) over key pairs
// [kp0, kp1): the int32 sums are added to acc (row stride dhp). Named accumulators
// so that GCC keeps them in registers.
#define XDNA_PV_ROW(r, KP)                                                   \
  if constexpr (MR > r) {                                                    \
    const __m256i x = _mm256_set1_epi32(load_pair(w + (r) * ldw + 2 * (KP))); \
    s##r##0 = _mm256_add_epi32(s##r##0, _mm256_madd_epi16(x, v0));          \
    s##r##1 = _mm256_add_epi32(s##r##1, _mm256_madd_epi16(x, v1));          \
  }
// Key pair KP, whose V row (16 columns as two ymm of int16 pairs) is at vp.
#define XDNA_PV_STEP(KP)                                                             \
  {                                                                                  \
    const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vp));      \
    const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(vp + 16)); \
    XDNA_PV_ROW(0, KP) XDNA_PV_ROW(1, KP) XDNA_PV_ROW(2, KP) XDNA_PV_ROW(3, KP)      \
  }
#define XDNA_PV_STORE(r)                                                     \
  if constexpr (MR > r) {                                                    \
    _mm256_store_si256(reinterpret_cast<__m256i*>(part[r]), s##r##0);       \
    _mm256_store_si256(reinterpret_cast<__m256i*>(part[r] + 8), s##r##1);   \
  }

template <int MR>
void block(const int16_t* w, long ldw, int kp0, int kp1, const int16_t* v16, int dhp, int c0,
           int64_t* acc) {
  __m256i s00 = _mm256_setzero_si256(), s01 = s00, s10 = s00, s11 = s00;
  __m256i s20 = s00, s21 = s00, s30 = s00, s31 = s00;
  const long vstride = 2L * dhp;  // int16 per key pair
  const int16_t* vp = v16 + kp0 * vstride + 2L * c0;
  int kp = kp0;
  // Peaked rows have long runs of zero weights (attention.cpp rounds every key
  // below about 2^-15 of the row maximum to 0): a run of kSkipPairs pairs whose
  // weights are 0 in all MR rows adds nothing, so it is skipped on one test.
  for (; kp + kSkipPairs <= kp1; kp += kSkipPairs) {
    __m256i any = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + 2 * kp));
    for (int r = 1; r < MR; ++r)
      any = _mm256_or_si256(
          any, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * ldw + 2 * kp)));
    if (_mm256_testz_si256(any, any)) {
      vp += kSkipPairs * vstride;
      continue;
    }
    for (int i = kp; i < kp + kSkipPairs; ++i, vp += vstride) XDNA_PV_STEP(i)
  }
  for (; kp < kp1; ++kp, vp += vstride) XDNA_PV_STEP(kp)
  alignas(32) int32_t part[4][kCols];
  XDNA_PV_STORE(0) XDNA_PV_STORE(1) XDNA_PV_STORE(2) XDNA_PV_STORE(3)
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < kCols; ++c) acc[r * static_cast<long>(dhp) + c0 + c] += part[r][c];
}

#undef XDNA_PV_ROW
#undef XDNA_PV_STEP
#undef XDNA_PV_STORE

}  // namespace

void attention_pv16_avx2(const int16_t* w, long ldw, int rows, int kpairs, const int16_t* v16,
                         int dhp, int64_t* acc) {
  for (long i = 0; i < static_cast<long>(rows) * dhp; ++i) acc[i] = 0;
  // Chunk outermost: the chunk's V columns (kChunkPairs x 16 int16 pairs = 16 KB)
  // stay in L1 while every row block sweeps them.
  for (int kp0 = 0; kp0 < kpairs; kp0 += kChunkPairs) {
    const int kp1 = kpairs - kp0 < kChunkPairs ? kpairs : kp0 + kChunkPairs;
    for (int c0 = 0; c0 < dhp; c0 += kCols) {
      for (int r = 0; r < rows; r += 4) {
        const int16_t* wr = w + r * ldw;
        int64_t* ar = acc + static_cast<long>(r) * dhp;
        switch (rows - r < 4 ? rows - r : 4) {
          case 4: block<4>(wr, ldw, kp0, kp1, v16, dhp, c0, ar); break;
          case 3: block<3>(wr, ldw, kp0, kp1, v16, dhp, c0, ar); break;
          case 2: block<2>(wr, ldw, kp0, kp1, v16, dhp, c0, ar); break;
          default: block<1>(wr, ldw, kp0, kp1, v16, dhp, c0, ar); break;
        }
      }
    }
  }
}

}  // namespace xdna
#endif  // XDNA_NO_X86_PATHS
