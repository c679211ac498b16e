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

#include "int8_gemm.h"
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

inline void epilogue_piece_avx2(const Epilogue& e, int8_t* o, int n0, int cnt,
                                const int32_t* acc) {
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
  if (i < cnt) store_epilogue_piece(e, o + i, n0 + i, cnt - i, acc + i);
}

inline void epilogue_row_avx2(const Epilogue& e, int m, int n0, int cnt, const int32_t* acc) {
  if (e.kind != EpilogueKind::kRequantInt8) {
    apply_epilogue_row(e, m, n0, cnt, acc);
    return;
  }
  for_each_out_piece(e, m, n0, cnt, acc, [&e](void* dst, int p0, int c, const int32_t* a) {
    epilogue_piece_avx2(e, static_cast<int8_t*>(dst), p0, c, a);
  });
}

// Named accumulators (not an array) so that GCC keeps them in registers.
#define XDNA_STEP_ROW(r)                              \
  if constexpr (MR > r) {                             \
    const __m256i av = _mm256_set1_epi32(aw[r]);      \
    const __m256i ua = _mm256_set1_epi32(aw[r + MR]); \
    c##r##0 = dot4(c##r##0, av, ua, b0, ones);        \
    c##r##1 = dot4(c##r##1, av, ua, b1, ones);        \
  }
#define XDNA_STORE_ROW(r)                                                            \
  if constexpr (MR > r) {                                                            \
    _mm256_store_si256(reinterpret_cast<__m256i*>(out[r] + sub * 16), c##r##0);      \
    _mm256_store_si256(reinterpret_cast<__m256i*>(out[r] + sub * 16 + 8), c##r##1);  \
  }

// `aw`: this row block's A as int32 words of 4 k (zero-padded k tail), per
// group g the MR rows' words then their byte-wise absolute values:
// aw[g * 2 MR + r] and aw[g * 2 MR + MR + r] (packed once per row range, see
// below; |a| comes with the packing, not once per panel sweep).
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
    for (int g = 0; g < groups; ++g, bp += kPanelCols * kKGroup, aw += 2 * MR) {
      const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp));
      const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bp + 32));
      XDNA_STEP_ROW(0)
      XDNA_STEP_ROW(1)
      XDNA_STEP_ROW(2)
      XDNA_STEP_ROW(3)
    }
    XDNA_STORE_ROW(0) XDNA_STORE_ROW(1) XDNA_STORE_ROW(2) XDNA_STORE_ROW(3)
  }
  for (int r = 0; r < MR; ++r) epilogue_row_avx2(epi, m + r, n0, cnt, out[r]);
}

// One row (decoder GEMV, lm head): the whole 64-column panel in one sweep
// with 8 independent accumulators. tile<1> would sweep the panel 4 times with
// 2 accumulator chains each and stall on the maddubs/madd/add latency.
void tile_row(const PackedB& b, const int8_t* panel, const int32_t* aw, int m, int n0, int cnt,
              const Epilogue& epi) {
  const int groups = b.Kp / kKGroup;
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0,
          c7 = c0;
  const int8_t* bp = panel;
  const auto ld = [](const int8_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  };
  for (int g = 0; g < groups; ++g, bp += kPanelCols * kKGroup) {
    _mm_prefetch(reinterpret_cast<const char*>(bp + 8 * kPanelCols * kKGroup), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(bp + 8 * kPanelCols * kKGroup + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(bp + 8 * kPanelCols * kKGroup + 128),
                 _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(bp + 8 * kPanelCols * kKGroup + 192),
                 _MM_HINT_T0);
    const __m256i av = _mm256_set1_epi32(aw[2 * g]);
    const __m256i ua = _mm256_set1_epi32(aw[2 * g + 1]);
    c0 = dot4(c0, av, ua, ld(bp), ones);
    c1 = dot4(c1, av, ua, ld(bp + 32), ones);
    c2 = dot4(c2, av, ua, ld(bp + 64), ones);
    c3 = dot4(c3, av, ua, ld(bp + 96), ones);
    c4 = dot4(c4, av, ua, ld(bp + 128), ones);
    c5 = dot4(c5, av, ua, ld(bp + 160), ones);
    c6 = dot4(c6, av, ua, ld(bp + 192), ones);
    c7 = dot4(c7, av, ua, ld(bp + 224), ones);
  }
  alignas(32) int32_t out[kPanelCols];
  __m256i* o = reinterpret_cast<__m256i*>(out);
  _mm256_store_si256(o + 0, c0);
  _mm256_store_si256(o + 1, c1);
  _mm256_store_si256(o + 2, c2);
  _mm256_store_si256(o + 3, c3);
  _mm256_store_si256(o + 4, c4);
  _mm256_store_si256(o + 5, c5);
  _mm256_store_si256(o + 6, c6);
  _mm256_store_si256(o + 7, c7);
  epilogue_row_avx2(epi, m, n0, cnt, out);
}

// Two rows: two sweeps of 32 columns, 2 x 4 accumulators (tile<2> would use 4).
void tile_two(const PackedB& b, const int8_t* panel, const int32_t* aw, int m, int n0, int cnt,
              const Epilogue& epi) {
  const int groups = b.Kp / kKGroup;
  const __m256i ones = _mm256_set1_epi16(1);
  alignas(32) int32_t out[2][kPanelCols];
  const auto ld = [](const int8_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  };
  for (int half = 0; half < 2; ++half) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    __m256i b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    const int8_t* bp = panel + half * 128;
    for (int g = 0; g < groups; ++g, bp += kPanelCols * kKGroup) {
      const __m256i w0 = ld(bp), w1 = ld(bp + 32), w2 = ld(bp + 64), w3 = ld(bp + 96);
      const __m256i x0 = _mm256_set1_epi32(aw[4 * g]), u0 = _mm256_set1_epi32(aw[4 * g + 2]);
      const __m256i x1 = _mm256_set1_epi32(aw[4 * g + 1]), u1 = _mm256_set1_epi32(aw[4 * g + 3]);
      a0 = dot4(a0, x0, u0, w0, ones);
      a1 = dot4(a1, x0, u0, w1, ones);
      a2 = dot4(a2, x0, u0, w2, ones);
      a3 = dot4(a3, x0, u0, w3, ones);
      b0 = dot4(b0, x1, u1, w0, ones);
      b1 = dot4(b1, x1, u1, w1, ones);
      b2 = dot4(b2, x1, u1, w2, ones);
      b3 = dot4(b3, x1, u1, w3, ones);
    }
    __m256i* o0 = reinterpret_cast<__m256i*>(out[0] + half * 32);
    __m256i* o1 = reinterpret_cast<__m256i*>(out[1] + half * 32);
    _mm256_store_si256(o0 + 0, a0);
    _mm256_store_si256(o0 + 1, a1);
    _mm256_store_si256(o0 + 2, a2);
    _mm256_store_si256(o0 + 3, a3);
    _mm256_store_si256(o1 + 0, b0);
    _mm256_store_si256(o1 + 1, b1);
    _mm256_store_si256(o1 + 2, b2);
    _mm256_store_si256(o1 + 3, b3);
  }
  epilogue_row_avx2(epi, m, n0, cnt, out[0]);
  epilogue_row_avx2(epi, m + 1, n0, cnt, out[1]);
}

// |each byte| of a word (vpabsb: -128 -> 128 as u8, which vpmaddubsw reads right).
inline int32_t abs_bytes(int32_t w) {
  return _mm_cvtsi128_si32(_mm_abs_epi8(_mm_cvtsi32_si128(w)));
}

// Rows [m, m + mr) in the layout of tile(): aw[g * 2 mr + r] = word g of row r,
// aw[g * 2 mr + mr + r] = its byte-wise |.|.
void pack_a_block(const int8_t* A, long lda, int K, int m, int mr, int32_t* aw) {
  const int full = K / kKGroup, rest = K - full * kKGroup;
  for (int r = 0; r < mr; ++r) {
    const int8_t* a = A + static_cast<long>(m + r) * lda;
    for (int g = 0; g < full; ++g) {
      const int32_t w = load_word(a + g * kKGroup);
      aw[g * 2 * mr + r] = w;
      aw[g * 2 * mr + mr + r] = abs_bytes(w);
    }
    if (rest) {
      const int32_t w = load_word_tail(a + full * kKGroup, rest);
      aw[full * 2 * mr + r] = w;
      aw[full * 2 * mr + mr + r] = abs_bytes(w);
    }
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
  const long words = 2L * (m1 - m0) * groups;  // each word and its |.|
  int32_t* aw = static_cast<int32_t*>(std::malloc(sizeof(int32_t) * (words > 0 ? words : 1)));
  if (!aw) throw std::bad_alloc();  // never leave the output unwritten
  for (int m = m0; m < m1; m += kMr2)
    pack_a_block(A, lda, b.K, m, m1 - m < kMr2 ? m1 - m : kMr2, aw + 2 * (m - m0) * groups);
  for (int p = p0; p < p1; ++p) {
    const int8_t* panel = b.data + static_cast<long>(p) * b.Kp * kPanelCols;
    const int n0 = p * kPanelCols;
    const int cnt = b.N - n0 < kPanelCols ? b.N - n0 : kPanelCols;
    for (int m = m0; m < m1; m += kMr2) {
      const int32_t* blk = aw + 2 * (m - m0) * groups;
      switch (m1 - m < kMr2 ? m1 - m : kMr2) {
        case 4: tile<4>(b, panel, blk, m, n0, cnt, epi); break;
        case 3: tile<3>(b, panel, blk, m, n0, cnt, epi); break;
        case 2: tile_two(b, panel, blk, m, n0, cnt, epi); break;
        default: tile_row(b, panel, blk, m, n0, cnt, epi); break;
      }
    }
  }
  std::free(aw);
}

namespace {

inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// MR rows of A against Bt rows read in place, 32 k per step (|a| x sign(b, a)
// with vpmaddubsw, exact as in tile()); the k tail (< 32) is scalar so no byte
// past a row is read. Each column n is an independent chain.
template <int MR>
void small_rows(int N, int K, const int8_t* A, int lda, const int8_t* Bt, int ldb, int32_t* C,
                int ldc) {
  const int full = K / 32;
  const __m256i ones = _mm256_set1_epi16(1);
  for (int n = 0; n < N; ++n) {
    const int8_t* b = Bt + static_cast<long>(n) * ldb;
    __m256i acc[MR];
    for (int r = 0; r < MR; ++r) acc[r] = _mm256_setzero_si256();
    for (int c = 0; c < full; ++c) {
      const __m256i bv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + c * 32));
      for (int r = 0; r < MR; ++r) {
        const __m256i av = _mm256_loadu_si256(
            reinterpret_cast<const __m256i*>(A + static_cast<long>(r) * lda + c * 32));
        acc[r] = dot4(acc[r], av, _mm256_abs_epi8(av), bv, ones);
      }
    }
    for (int r = 0; r < MR; ++r) {
      const int8_t* a = A + static_cast<long>(r) * lda;
      int32_t s = hsum_epi32(acc[r]);
      for (int k = full * 32; k < K; ++k) s += static_cast<int32_t>(a[k]) * b[k];
      C[static_cast<long>(r) * ldc + n] = s;
    }
  }
}

}  // namespace

void gemm_nt_small_avx2(int M, int N, int K, const int8_t* A, int lda, const int8_t* Bt, int ldb,
                        int32_t* C, int ldc) {
  for (int m = 0; m < M;) {  // blocks of up to 4 rows share each Bt load
    const int mr = M - m >= 4 ? 4 : M - m;
    const int8_t* a = A + static_cast<long>(m) * lda;
    int32_t* c = C + static_cast<long>(m) * ldc;
    switch (mr) {
      case 4: small_rows<4>(N, K, a, lda, Bt, ldb, c, ldc); break;
      case 3: small_rows<3>(N, K, a, lda, Bt, ldb, c, ldc); break;
      case 2: small_rows<2>(N, K, a, lda, Bt, ldb, c, ldc); break;
      default: small_rows<1>(N, K, a, lda, Bt, ldb, c, ldc); break;
    }
    m += mr;
  }
}

}  // namespace xdna
#endif  // XDNA_NO_X86_PATHS
