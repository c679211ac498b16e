// AVX-512 VNNI path of the packed int8 GEMM.
//
// vpdpbusd multiplies u8 x s8, so A is offset to u8 (a XOR 0x80 == a + 128)
// and the per-column correction 128 * sum_k W[k, n] is subtracted afterwards.
// Exact: the true result fits int32 (K <= 65536) and intermediate wrap-around
// of vpdpbusd cancels modulo 2^32. Register block: 6 rows x 64 columns
// (24 zmm accumulators).
#if !defined(XDNA_NO_X86_PATHS)
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own
// _mm512_undefined_* helpers when inlined (GCC PR 105593): a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdlib>
#include <cstring>
#include <new>

#include "int8_gemm.h"
#include "int8_gemm_epilogue.h"
#include "int8_gemm_packed.h"

namespace xdna {
namespace {

constexpr int kMr512 = 6;

// acc += u8(a) . s8(b) per 32-bit lane. Inline asm instead of
// _mm512_dpbusd_epi32: GCC 12 wraps every call of that intrinsic in register
// copies plus a stack store of the accumulator, halving the kernel's speed.
inline __m512i dpbusd(__m512i acc, __m512i a_u8, __m512i b_s8) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a_u8), "v"(b_s8));
  return acc;
}

inline int32_t load_u8_word(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v ^ static_cast<int32_t>(0x80808080u);
}

// The last, partial k-group: missing bytes are 0 (B is zero-padded there).
inline int32_t load_u8_word_tail(const int8_t* p, int n) {
  int8_t buf[4] = {0, 0, 0, 0};
  std::memcpy(buf, p, n);
  return load_u8_word(buf);
}

// The epilogue of one row segment, 16 lanes at a time. Lane for lane this is
// matmul::output_int8 / output_f32 (kernels/matmul/matmul.h): int32 add of
// the bias, int64 product with the multiplier, + 2^(e-1), arithmetic shift
// by e, saturation to [-127, 127]; dequant = cvt, fp32 mul, fp32 add. GCC
// does not vectorise the scalar form (per-lane 64-bit shifts), and at ~1 ns
// per output it would cost as much as the GEMM itself. The hypothesis tests
// compare this path with the numpy mirror of the scalar epilogue.
inline void epilogue_piece_avx512(const Epilogue& e, void* dst, int n0, int cnt,
                                  const int32_t* acc) {
  for (int i = 0; i < cnt; i += 16) {
    const int rem = cnt - i;
    const __mmask16 mk = rem >= 16 ? static_cast<__mmask16>(0xFFFF)
                                   : static_cast<__mmask16>((1u << rem) - 1);
    const __m512i a = _mm512_maskz_loadu_epi32(mk, acc + i);
    if (e.kind == EpilogueKind::kDequantF32) {
      const __m512 sc = _mm512_maskz_loadu_ps(mk, e.scale + n0 + i);
      const __m512 bi = _mm512_maskz_loadu_ps(mk, e.bias_f32 + n0 + i);
      const __m512 y = _mm512_add_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(a), sc), bi);
      _mm512_mask_storeu_ps(static_cast<float*>(dst) + i, mk, y);
      continue;
    }
    const __m512i t = _mm512_add_epi32(a, _mm512_maskz_loadu_epi32(mk, e.bias_i32 + n0 + i));
    const __m512i mult = _mm512_maskz_loadu_epi32(mk, e.mult + n0 + i);
    const __m512i sh = _mm512_maskz_loadu_epi32(mk, e.shift + n0 + i);
    const __m512i lo32 = _mm512_set1_epi64(0xFFFFFFFFLL);
    const __m512i one = _mm512_set1_epi64(1);
    const __m512i hi = _mm512_set1_epi64(kInt8Max), lo = _mm512_set1_epi64(kInt8Min);
    // even lanes live in the low dword of each qword, odd lanes in the high one
    const __m512i sh_e = _mm512_and_si512(sh, lo32), sh_o = _mm512_srli_epi64(sh, 32);
    const __m512i p_e = _mm512_mul_epi32(t, mult);
    const __m512i p_o = _mm512_mul_epi32(_mm512_srli_epi64(t, 32), _mm512_srli_epi64(mult, 32));
    const __m512i r_e = _mm512_sllv_epi64(one, _mm512_sub_epi64(sh_e, one));
    const __m512i r_o = _mm512_sllv_epi64(one, _mm512_sub_epi64(sh_o, one));
    __m512i y_e = _mm512_srav_epi64(_mm512_add_epi64(p_e, r_e), sh_e);
    __m512i y_o = _mm512_srav_epi64(_mm512_add_epi64(p_o, r_o), sh_o);
    y_e = _mm512_min_epi64(_mm512_max_epi64(y_e, lo), hi);
    y_o = _mm512_min_epi64(_mm512_max_epi64(y_o, lo), hi);
    const __m512i y = _mm512_or_si512(_mm512_and_si512(y_e, lo32), _mm512_slli_epi64(y_o, 32));
    _mm512_mask_cvtepi32_storeu_epi8(static_cast<int8_t*>(dst) + i, mk, y);
  }
}

inline void epilogue_row_avx512(const Epilogue& e, int m, int n0, int cnt, const int32_t* acc) {
  if (e.kind == EpilogueKind::kInt32) {
    apply_epilogue_row(e, m, n0, cnt, acc);
    return;
  }
  // one piece per output array the segment touches (split outputs: q/k/v blocks)
  for_each_out_piece(e, m, n0, cnt, acc, [&e](void* dst, int p0, int c, const int32_t* a) {
    epilogue_piece_avx512(e, dst, p0, c, a);
  });
}

// Accumulators are named variables (not an array): GCC keeps a 2-D array of
// vectors in memory and reloads it every k-group, which halves the speed.
#define XDNA_DECL_ROW(r) \
  __m512i c##r##0 = _mm512_setzero_si512(), c##r##1 = c##r##0, c##r##2 = c##r##0, c##r##3 = c##r##0;
#define XDNA_STEP_ROW(r, WORD)                                   \
  if constexpr (MR > r) {                                        \
    const __m512i av = _mm512_set1_epi32(WORD);                  \
    c##r##0 = dpbusd(c##r##0, av, b0);                           \
    c##r##1 = dpbusd(c##r##1, av, b1);                           \
    c##r##2 = dpbusd(c##r##2, av, b2);                           \
    c##r##3 = dpbusd(c##r##3, av, b3);                           \
  }
#define XDNA_STORE_ROW(r)                                                   \
  if constexpr (MR > r) {                                                   \
    _mm512_store_si512(out + 0, _mm512_sub_epi32(c##r##0, k0));             \
    _mm512_store_si512(out + 16, _mm512_sub_epi32(c##r##1, k1));            \
    _mm512_store_si512(out + 32, _mm512_sub_epi32(c##r##2, k2));            \
    _mm512_store_si512(out + 48, _mm512_sub_epi32(c##r##3, k3));            \
    epilogue_row_avx512(epi, m + r, n0, cnt, out);                          \
  }

// `aw`: this row block's A, pre-packed as u8 words (a XOR 0x80, 4 k per
// word, zero-padded k) interleaved by row: aw[g * MR + r]. One memory
// broadcast per row and k-group, no per-panel re-conversion.
template <int MR>
void tile(const PackedB& b, const int8_t* panel, const int32_t* aw, int m, int n0, int cnt,
          const Epilogue& epi) {
  XDNA_DECL_ROW(0) XDNA_DECL_ROW(1) XDNA_DECL_ROW(2) XDNA_DECL_ROW(3) XDNA_DECL_ROW(4)
  XDNA_DECL_ROW(5)
  const int groups = b.Kp / kKGroup;
  const int8_t* bp = panel;
  for (int g = 0; g < groups; ++g, bp += kPanelCols * kKGroup, aw += MR) {
    const __m512i b0 = _mm512_loadu_si512(bp);
    const __m512i b1 = _mm512_loadu_si512(bp + 64);
    const __m512i b2 = _mm512_loadu_si512(bp + 128);
    const __m512i b3 = _mm512_loadu_si512(bp + 192);
    XDNA_STEP_ROW(0, aw[0])
    XDNA_STEP_ROW(1, aw[1])
    XDNA_STEP_ROW(2, aw[2])
    XDNA_STEP_ROW(3, aw[3])
    XDNA_STEP_ROW(4, aw[4])
    XDNA_STEP_ROW(5, aw[5])
  }
  // Padded k bytes of A became 0x80 (=128) but meet zero weights; the
  // correction uses the real column sums only.
  const __m512i k0 = _mm512_slli_epi32(_mm512_loadu_si512(b.colsum + n0), 7);
  const __m512i k1 = _mm512_slli_epi32(_mm512_loadu_si512(b.colsum + n0 + 16), 7);
  const __m512i k2 = _mm512_slli_epi32(_mm512_loadu_si512(b.colsum + n0 + 32), 7);
  const __m512i k3 = _mm512_slli_epi32(_mm512_loadu_si512(b.colsum + n0 + 48), 7);
  alignas(64) int32_t out[kPanelCols];
  XDNA_STORE_ROW(0) XDNA_STORE_ROW(1) XDNA_STORE_ROW(2) XDNA_STORE_ROW(3) XDNA_STORE_ROW(4)
  XDNA_STORE_ROW(5)
}

// One row (decoder GEMV): the 4 accumulators of tile<1> would form 4
// dependency chains and stall on vpdpbusd latency, so even and odd k-groups
// go to separate accumulators (8 chains), and the panel is prefetched ahead:
// a GEMV streams each weight byte exactly once.
void tile_row(const PackedB& b, const int8_t* panel, const int32_t* aw, int m, int n0, int cnt,
              const Epilogue& epi) {
  __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0;
  __m512i d0 = c0, d1 = c0, d2 = c0, d3 = c0;
  const int groups = b.Kp / kKGroup;
  const int8_t* bp = panel;
  int g = 0;
  constexpr int kStep = kPanelCols * kKGroup;  // 256 bytes per k-group
  for (; g + 2 <= groups; g += 2, bp += 2 * kStep) {
    _mm_prefetch(reinterpret_cast<const char*>(bp + 8 * kStep), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(bp + 8 * kStep + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(bp + 8 * kStep + 128), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(bp + 8 * kStep + 192), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(bp + 9 * kStep), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(bp + 9 * kStep + 64), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(bp + 9 * kStep + 128), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(bp + 9 * kStep + 192), _MM_HINT_T0);
    const __m512i a0 = _mm512_set1_epi32(aw[g]);
    const __m512i a1 = _mm512_set1_epi32(aw[g + 1]);
    c0 = dpbusd(c0, a0, _mm512_loadu_si512(bp));
    c1 = dpbusd(c1, a0, _mm512_loadu_si512(bp + 64));
    c2 = dpbusd(c2, a0, _mm512_loadu_si512(bp + 128));
    c3 = dpbusd(c3, a0, _mm512_loadu_si512(bp + 192));
    d0 = dpbusd(d0, a1, _mm512_loadu_si512(bp + kStep));
    d1 = dpbusd(d1, a1, _mm512_loadu_si512(bp + kStep + 64));
    d2 = dpbusd(d2, a1, _mm512_loadu_si512(bp + kStep + 128));
    d3 = dpbusd(d3, a1, _mm512_loadu_si512(bp + kStep + 192));
  }
  if (g < groups) {
    const __m512i a0 = _mm512_set1_epi32(aw[g]);
    c0 = dpbusd(c0, a0, _mm512_loadu_si512(bp));
    c1 = dpbusd(c1, a0, _mm512_loadu_si512(bp + 64));
    c2 = dpbusd(c2, a0, _mm512_loadu_si512(bp + 128));
    c3 = dpbusd(c3, a0, _mm512_loadu_si512(bp + 192));
  }
  alignas(64) int32_t out[kPanelCols];
  const __m512i* cs = reinterpret_cast<const __m512i*>(b.colsum + n0);
  _mm512_store_si512(out + 0, _mm512_sub_epi32(_mm512_add_epi32(c0, d0),
                                               _mm512_slli_epi32(_mm512_loadu_si512(cs + 0), 7)));
  _mm512_store_si512(out + 16, _mm512_sub_epi32(_mm512_add_epi32(c1, d1),
                                                _mm512_slli_epi32(_mm512_loadu_si512(cs + 1), 7)));
  _mm512_store_si512(out + 32, _mm512_sub_epi32(_mm512_add_epi32(c2, d2),
                                                _mm512_slli_epi32(_mm512_loadu_si512(cs + 2), 7)));
  _mm512_store_si512(out + 48, _mm512_sub_epi32(_mm512_add_epi32(c3, d3),
                                                _mm512_slli_epi32(_mm512_loadu_si512(cs + 3), 7)));
  epilogue_row_avx512(epi, m, n0, cnt, out);
}

// Packs rows [m, m + mr) of A as aw[g * mr + r] (see tile()).
void pack_a_block(const int8_t* A, long lda, int K, int m, int mr, int32_t* aw) {
  const int full = K / kKGroup, rest = K - full * kKGroup;
  for (int r = 0; r < mr; ++r) {
    const int8_t* a = A + static_cast<long>(m + r) * lda;
    for (int g = 0; g < full; ++g) aw[g * mr + r] = load_u8_word(a + g * kKGroup);
    if (rest) aw[full * mr + r] = load_u8_word_tail(a + full * kKGroup, rest);
  }
}

#undef XDNA_DECL_ROW
#undef XDNA_STEP_ROW
#undef XDNA_STORE_ROW

}  // namespace

void gemm_packed_avx512(const PackedB& b, const int8_t* A, long lda, int m0, int m1, int p0,
                        int p1, const Epilogue& epi) {
  // Pack the row range once (it is swept by every panel). malloc, not a
  // std::vector: this translation unit stays free of STL instantiations.
  const long words = static_cast<long>(m1 - m0) * (b.Kp / kKGroup);
  int32_t* aw = static_cast<int32_t*>(std::malloc(sizeof(int32_t) * (words > 0 ? words : 1)));
  if (!aw) throw std::bad_alloc();  // never leave the output unwritten
  for (int m = m0; m < m1; m += kMr512) {
    const int mr = m1 - m < kMr512 ? m1 - m : kMr512;
    pack_a_block(A, lda, b.K, m, mr, aw + static_cast<long>(m - m0) * (b.Kp / kKGroup));
  }
  for (int p = p0; p < p1; ++p) {
    const int8_t* panel = b.data + static_cast<long>(p) * b.Kp * kPanelCols;
    const int n0 = p * kPanelCols;
    const int cnt = b.N - n0 < kPanelCols ? b.N - n0 : kPanelCols;
    for (int m = m0; m < m1; m += kMr512) {
      const int32_t* blk = aw + static_cast<long>(m - m0) * (b.Kp / kKGroup);
      switch (m1 - m < kMr512 ? m1 - m : kMr512) {
        case 6: tile<6>(b, panel, blk, m, n0, cnt, epi); break;
        case 5: tile<5>(b, panel, blk, m, n0, cnt, epi); break;
        case 4: tile<4>(b, panel, blk, m, n0, cnt, epi); break;
        case 3: tile<3>(b, panel, blk, m, n0, cnt, epi); break;
        case 2: tile<2>(b, panel, blk, m, n0, cnt, epi); break;
        default: tile_row(b, panel, blk, m, n0, cnt, epi); break;
      }
    }
  }
  std::free(aw);
}

namespace {

// MR rows of A (as u8 = a XOR 0x80, zero bytes past K) against Bt rows read in
// place: one zmm of 64 k per step, the k tail through a masked (non-faulting)
// load, so no byte past a row of Bt is touched. The correction
// 128 * sum_k Bt[n, k] comes from vpdpbusd of 0x80 bytes with the same b
// vectors. Independent columns n give the out-of-order core parallel chains.
template <int MR>
void small_rows(int N, int K, const uint8_t* au, long ldau, const int8_t* Bt, int ldb, int32_t* C,
                int ldc) {
  const int full = K / 64, rest = K % 64;
  const __mmask64 tail = rest ? static_cast<__mmask64>((1ull << rest) - 1) : 0;
  const __m512i k80 = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int n = 0; n < N; ++n) {
    const int8_t* b = Bt + static_cast<long>(n) * ldb;
    __m512i corr = _mm512_setzero_si512();
    __m512i acc[MR];
    for (int r = 0; r < MR; ++r) acc[r] = _mm512_setzero_si512();
    int c = 0;
    for (; c < full; ++c) {
      const __m512i bv = _mm512_loadu_si512(b + c * 64);
      corr = dpbusd(corr, k80, bv);
      for (int r = 0; r < MR; ++r)
        acc[r] = dpbusd(acc[r], _mm512_loadu_si512(au + r * ldau + c * 64), bv);
    }
    if (rest) {
      const __m512i bv = _mm512_maskz_loadu_epi8(tail, b + c * 64);
      corr = dpbusd(corr, k80, bv);
      for (int r = 0; r < MR; ++r)
        acc[r] = dpbusd(acc[r], _mm512_loadu_si512(au + r * ldau + c * 64), bv);
    }
    for (int r = 0; r < MR; ++r)
      C[static_cast<long>(r) * ldc + n] = _mm512_reduce_add_epi32(_mm512_sub_epi32(acc[r], corr));
  }
}

}  // namespace

void gemm_nt_small_avx512(int M, int N, int K, const int8_t* A, int lda, const int8_t* Bt,
                          int ldb, int32_t* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  // A as u8 rows padded to whole zmm (bytes past K are 0; they meet masked-out b).
  const long chunks = (K + 63) / 64, ldau = chunks * 64;
  alignas(64) uint8_t stack_buf[4 * 4096];
  const long need = static_cast<long>(M) * ldau;
  uint8_t* au = need <= static_cast<long>(sizeof(stack_buf))
                    ? stack_buf
                    : static_cast<uint8_t*>(std::malloc(static_cast<size_t>(need)));
  if (!au) throw std::bad_alloc();
  const __m512i k80 = _mm512_set1_epi8(static_cast<char>(0x80));
  for (int r = 0; r < M; ++r) {
    const int8_t* a = A + static_cast<long>(r) * lda;
    for (long c = 0; c < chunks; ++c) {
      const int left = K - static_cast<int>(c * 64);
      const __mmask64 mk = left >= 64 ? ~static_cast<__mmask64>(0)
                                      : static_cast<__mmask64>((1ull << left) - 1);
      const __m512i v = _mm512_maskz_loadu_epi8(mk, a + c * 64);
      _mm512_storeu_si512(au + r * ldau + c * 64,
                          _mm512_maskz_mov_epi8(mk, _mm512_xor_si512(v, k80)));
    }
  }
  for (int m = 0; m < M;) {  // blocks of up to 4 rows share each Bt load
    const int mr = M - m >= 4 ? 4 : M - m;
    const uint8_t* blk = au + static_cast<long>(m) * ldau;
    int32_t* c = C + static_cast<long>(m) * ldc;
    switch (mr) {
      case 4: small_rows<4>(N, K, blk, ldau, Bt, ldb, c, ldc); break;
      case 3: small_rows<3>(N, K, blk, ldau, Bt, ldb, c, ldc); break;
      case 2: small_rows<2>(N, K, blk, ldau, Bt, ldb, c, ldc); break;
      default: small_rows<1>(N, K, blk, ldau, Bt, ldb, c, ldc); break;
    }
    m += mr;
  }
  if (au != stack_buf) std::free(au);
}

}  // namespace xdna
#endif  // XDNA_NO_X86_PATHS
