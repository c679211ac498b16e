// AVX2 path of the packed int8 GEMM (CPUs without VNNI, e.g. AMD EPYC Zen 2/3).
//
// Exact s8 x s8 with vpmaddubsw: |a| (u8) times sign(b, a) (s8) gives a * b;
// the pair sums stay within int16 because weights are in [-127, 127]
// (2 * 128 * 127 = 32512 < 32767), then vpmaddwd with ones widens to int32.
// Register block: 4 rows x 16 columns (2 ymm of 8 columns x 4 k) per step.
#if !defined(XDNA_NO_X86_PATHS)
#include <immintrin.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "int8_gemm_epilogue.h"
#include "int8_gemm_packed.h"

namespace xdna {
namespace {

constexpr int kMr2 = 4;

inline int32_t load_word(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline int32_t load_word_tail(const int8_t* p, int n) {
  int8_t buf[4] = {0, 0, 0, 0};
  std::memcpy(buf, p, n);
  return load_word(buf);
}

inline __m256i dot4(__m256i acc, __m256i a, __m256i abs_a, __m256i b, __m256i ones) {
  const __m256i prod16 = _mm256_maddubs_epi16(abs_a, _mm256_sign_epi8(b, a));
  return _mm256_add_epi32(acc, _mm256_madd_epi16(prod16, ones));
}

// The int8 epilogue of one row segment, 8 lanes at a time: lane for lane
// matmul::output_int8 (int32 add of the bias, int64 product, + 2^(e-1),
// arithmetic shift by e, saturation to [-127, 127]). AVX2 lacks 64-bit
// arithmetic variable shifts and min/max, so: asr(x, e) = ~lsr(~x, e) for
// x < 0, and compare+blend for the clamp. The tail (< 8 lanes) and the other
// epilogue kinds use the scalar shared form. GCC does not vectorise the
// scalar form, which would cost as much as the GEMM on small K.
inline __m256i asr_epi64(__m256i x, __m256i e) {
  const __m256i neg = _mm256_cmpgt_epi64(_mm256_setzero_si256(), x);
  return _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(x, neg), e), neg);
}

inline __m256i requant_half(__m256i t, __m256i mult, __m256i sh) {
  const __m256i one = _mm256_set1_epi64x(1);
  const __m256i hi = _mm256_set1_epi64x(kInt8Max), lo = _mm256_set1_epi64x(kInt8Min);
  const __m256i p = _mm256_mul_epi32(t, mult);  // low dword of each qword, signed
  const __m256i rnd = _mm256_sllv_epi64(one, _mm256_sub_epi64(sh, one));
  __m256i y = asr_epi64(_mm256_add_epi64(p, rnd), sh);
  y = _mm256_blendv_epi8(y, hi, _mm256_cmpgt_epi64(y, hi));
  return _mm256_blendv_epi8(y, lo, _mm256_cmpgt_epi64(lo, y));
}

inline void epilogue_row_avx2(const Epilogue& e, int m, int n0, int cnt, const int32_t* acc) {
  if (e.kind != EpilogueKind::kRequantInt8) {
    apply_epilogue_row(e, m, n0, cnt, acc);
    return;
  }
  int8_t* o = static_cast<int8_t*>(e.out) + static_cast<long>(m) * e.ldo + n0;
  const __m256i lo32 = _mm256_set1_epi64x(0xFFFFFFFFLL);
  int i = 0;
  for (; i + 8 <= cnt; i += 8) {
    const auto ld = [](const int32_t* p) {
      return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    };
    const __m256i t = _mm256_add_epi32(ld(acc + i), ld(e.bias_i32 + n0 + i));
    const __m256i mult = ld(e.mult + n0 + i), sh = ld(e.shift + n0 + i);
    const __m256i y_e = requant_half(t, mult, _mm256_and_si256(sh, lo32));
    const __m256i y_o = requant_half(_mm256_srli_epi64(t, 32), _mm256_srli_epi64(mult, 32),
                                     _mm256_srli_epi64(sh, 32));
    const __m256i y = _mm256_blend_epi32(y_e, _mm256_slli_epi64(y_o, 32), 0xAA);
    const __m256i w16 = _mm256_packs_epi32(y, y);      // values already in [-127, 127]
    const __m256i w8 = _mm256_packs_epi16(w16, w16);  // per 128-bit lane: 4 bytes
    const int32_t lo4 = _mm_cvtsi128_si32(_mm256_castsi256_si128(w8));
    const int32_t hi4 = _mm_cvtsi128_si32(_mm256_extracti128_si256(w8, 1));
    std::memcpy(o + i, &lo4, 4);
    std::memcpy(o + i + 4, &hi4, 4);
  }
  if (i < cnt) apply_epilogue_row(e, m, n0 + i, cnt - i, acc + i);
}

// Named accumulators (not an array) so that GCC keeps them in registers.
#define XDNA_STEP_ROW(r, WORD)                      \
  if constexpr (MR > r) {                           \
    const __m256i av = _mm256_set1_epi32(WORD);     \
    const __m256i ua = _mm256_abs_epi8(av);         \
    c##r##0 = dot4(c##r##0, av, ua, b0, ones);      \
    c##r##1 = dot4(c##r##1, av, ua, b1, ones);      \
  }
#define XDNA_STORE_ROW(r)                                                            \
  if constexpr (MR > r) {                                                            \
    _mm256_store_si256(reinterpret_cast<__m256i*>(out[r] + sub * 16), c##r##0);      \
    _mm256_store_si256(reinterpret_cast<__m256i*>(out[r] + sub * 16 + 8), c##r##1);  \
  }

// `aw`: this row block's A as int32 words of 4 k (zero-padded k tail),
// interleaved by row: aw[g * MR + r] (packed once per row range, see below).
template <int MR>
void tile(const PackedB& b, const int8_t* panel, const int32_t* aw_block, int m, int n0, int cnt,
          const Epilogue& epi) {
  const int groups = b.Kp / kKGroup;
  const __m256i ones = _mm256_set1_epi16(1);
  alignas(32) int32_t out[MR][kPanelCols];
  for (int sub = 0; sub < kPanelCols / 16; ++sub) {
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00;
    __m256i c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    const int8_t* bp = panel + sub * 16 * kKGroup;
    const int32_t* aw = aw_block;
    for (int g = 0; g < groups; ++g, bp += kPanelCols * kKGroup, aw += MR) {
      const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp));
      const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + 32));
      XDNA_STEP_ROW(0, aw[0])
      XDNA_STEP_ROW(1, aw[1])
      XDNA_STEP_ROW(2, aw[2])
      XDNA_STEP_ROW(3, aw[3])
    }
    XDNA_STORE_ROW(0) XDNA_STORE_ROW(1) XDNA_STORE_ROW(2) XDNA_STORE_ROW(3)
  }
  for (int r = 0; r < MR; ++r) epilogue_row_avx2(epi, m + r, n0, cnt, out[r]);
}

void pack_a_block(const int8_t* A, long lda, int K, int m, int mr, int32_t* aw) {
  const int full = K / kKGroup, rest = K - full * kKGroup;
  for (int r = 0; r < mr; ++r) {
    const int8_t* a = A + static_cast<long>(m + r) * lda;
    for (int g = 0; g < full; ++g) aw[g * mr + r] = load_word(a + g * kKGroup);
    if (rest) aw[full * mr + r] = load_word_tail(a + full * kKGroup, rest);
  }
}

#undef XDNA_STEP_ROW
#undef XDNA_STORE_ROW

}  // namespace

void gemm_packed_avx2(const PackedB& b, const int8_t* A, long lda, int m0, int m1, int p0, int p1,
                      const Epilogue& epi) {
  // Pack the row range once (every panel sweeps it). malloc, not std::vector:
  // this translation unit stays free of STL instantiations.
  const long groups = b.Kp / kKGroup;
  const long words = static_cast<long>(m1 - m0) * groups;
  int32_t* aw = static_cast<int32_t*>(std::malloc(sizeof(int32_t) * (words > 0 ? words : 1)));
  if (!aw) throw std::bad_alloc();  // never leave the output unwritten
  for (int m = m0; m < m1; m += kMr2)
    pack_a_block(A, lda, b.K, m, m1 - m < kMr2 ? m1 - m : kMr2, aw + (m - m0) * groups);
  for (int p = p0; p < p1; ++p) {
    const int8_t* panel = b.data + static_cast<long>(p) * b.Kp * kPanelCols;
    const int n0 = p * kPanelCols;
    const int cnt = b.N - n0 < kPanelCols ? b.N - n0 : kPanelCols;
    for (int m = m0; m < m1; m += kMr2) {
      const int32_t* blk = aw + (m - m0) * groups;
      switch (m1 - m < kMr2 ? m1 - m : kMr2) {
        case 4: tile<4>(b, panel, blk, m, n0, cnt, epi); break;
        case 3: tile<3>(b, panel, blk, m, n0, cnt, epi); break;
        case 2: tile<2>(b, panel, blk, m, n0, cnt, epi); break;
        default: tile<1>(b, panel, blk, m, n0, cnt, epi); break;
      }
    }
  }
  std::free(aw);
}

}  // namespace xdna
#endif  // XDNA_NO_X86_PATHS
