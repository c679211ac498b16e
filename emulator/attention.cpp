// Host build of the attention kernel. Q.K^T and P.V go through the exact
// int8 GEMM (emulator/int8_gemm.h), so its SIMD path cannot change a bit (on
// AVX2, P.V of whole int16 weights instead: attention_pv_avx2.cpp, the same
// integers); the softmax between them is the integer contract of
// kernels/attention/attention.h.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#if !defined(XDNA_NO_X86_PATHS) && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#endif

#include "../kernels/attention/attention.h"
#include "attention_host.h"
#include "attention_pv.h"
#include "cpu_features.h"
#include "int8_gemm.h"
#include "int8_gemm_packed.h"
#include "parallel.h"

namespace xdna {

namespace {

// V[b, :, h, :] -> Vt[b, h] as [Dh, Tk] rows: the "Bt" operand of P.V.
void transpose_values(const AttentionArgs& a, std::vector<int8_t>& vt) {
  const int64_t hd = a.heads * a.head_dim;
  const int64_t bh = a.batch * a.heads;
  vt.resize(static_cast<std::size_t>(bh * a.head_dim * a.k_len));
  parallel_for(static_cast<std::size_t>(bh), 1, [&](std::size_t i0, std::size_t i1) {
    for (std::size_t i = i0; i < i1; ++i) {
      const int64_t b = static_cast<int64_t>(i) / a.heads, h = static_cast<int64_t>(i) % a.heads;
      const int8_t* src = a.v + b * a.k_len * hd + h * a.head_dim;
      int8_t* dst = vt.data() + static_cast<int64_t>(i) * a.head_dim * a.k_len;
      for (int64_t j = 0; j < a.k_len; ++j)
        for (int64_t d = 0; d < a.head_dim; ++d) dst[d * a.k_len + j] = src[j * hd + d];
    }
  });
}

// Scores of one tile -> weight halves (hi rows [0, rows), lo rows [rows, 2 rows)
// of `probs`, stride kv) and row sums W (contract in attention.h). The same
// inline integer code is compiled once per ISA (GCC target attributes) so the
// compiler can vectorise it; integer results, and fp32 multiplies/rounding
// without contraction, are identical on every path.
#define XDNA_SOFTMAX_ROWS_BODY                                                                \
  for (int64_t r = 0; r < rows; ++r) {                                                        \
    const int64_t i = i0 + r;                                                                 \
    const int64_t vis = attention::visible_keys(i, kv, a.causal, a.past_len);                 \
    const float* mrow = a.mask ? a.mask + b * a.mask_strides[0] + h * a.mask_strides[1] +     \
                                     i * a.mask_strides[2]                                    \
                               : nullptr;                                                     \
    attention::row_logits(scores + r * kv, vis, kv, a.logit_rq, mrow, a.mask_strides[3], z);  \
    wsum[r] = attention::row_weights(z, kv, probs + r * kv, probs + (rows + r) * kv);         \
  }

#define XDNA_SOFTMAX_ROWS_ARGS                                                          \
  const AttentionArgs &a, int64_t b, int64_t h, int64_t i0, int64_t rows, int64_t kv,    \
      const int32_t *scores, int32_t *z, int8_t *probs, int64_t *wsum

void softmax_rows_portable(XDNA_SOFTMAX_ROWS_ARGS) { XDNA_SOFTMAX_ROWS_BODY }

#if !defined(XDNA_NO_X86_PATHS) && defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
// Hand-vectorised rows (GCC does not vectorise the contract's loops: int64
// products, a table lookup and per-lane shifts): 8 (AVX2) or 16 (AVX-512)
// entries per step, the same integer operations lane for lane as
// attention.h, the tails through the contract's own scalar functions.
//   score_logit: the int64 product s * m of even and odd lanes (vpmuldq), + 2^(e-1),
//     arithmetic >> e, clamp to +-kLogitLimit, back to int32 (fits: |v| <= 2^27).
//   exp_term(d), d >= 0: kExpTable[d & 255] >> (d >> 8) by a gather and a variable
//     logical shift; shifts > 31 give 0 (vpsrlvd), and 25..31 give 0 as the table
//     holds values <= 2^24, exactly the contract's k > 24 -> 0.
//   weight: (E * 16383 + 2^23) >> 24 in unsigned 64-bit lanes (E * 16383 < 2^39).
//   W = sum w in int32 lanes: each lane adds at most kMaxKeys / 8 weights < 2^14, so
//     a lane stays below 2^28; summed in int64 at the end.
#define XDNA_AVX2 __attribute__((target("avx2,fma")))
#define XDNA_AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl")))

XDNA_AVX2 inline __m256i asr64_avx2(__m256i x, __m128i e) {
  const __m256i neg = _mm256_cmpgt_epi64(_mm256_setzero_si256(), x);
  return _mm256_xor_si256(_mm256_srl_epi64(_mm256_xor_si256(x, neg), e), neg);
}

XDNA_AVX2 inline __m256i clamp64_avx2(__m256i v, __m256i hi, __m256i lo) {
  v = _mm256_blendv_epi8(v, hi, _mm256_cmpgt_epi64(v, hi));
  return _mm256_blendv_epi8(v, lo, _mm256_cmpgt_epi64(lo, v));
}

XDNA_AVX2 void score_logits_avx2(const int32_t* acc, int64_t visible, Requant rq, int32_t* z) {
  const __m256i m = _mm256_set1_epi64x(rq.multiplier);
  const __m256i rnd = _mm256_set1_epi64x(int64_t{1} << (rq.shift - 1));
  const __m128i e = _mm_cvtsi32_si128(rq.shift);
  const __m256i hi = _mm256_set1_epi64x(softmax::kLogitLimit);
  const __m256i lo = _mm256_set1_epi64x(-softmax::kLogitLimit);
  int64_t j = 0;
  for (; j + 8 <= visible; j += 8) {
    const __m256i s = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc + j));
    const __m256i ve = clamp64_avx2(asr64_avx2(_mm256_add_epi64(_mm256_mul_epi32(s, m), rnd), e),
                                    hi, lo);
    const __m256i so = _mm256_srli_epi64(s, 32);
    const __m256i vo = clamp64_avx2(asr64_avx2(_mm256_add_epi64(_mm256_mul_epi32(so, m), rnd), e),
                                    hi, lo);
    const __m256i v = _mm256_blend_epi32(ve, _mm256_slli_epi64(vo, 32), 0xAA);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(z + j), v);
  }
  for (; j < visible; ++j) z[j] = softmax::score_logit(acc[j], rq);
}

// 8 int32 lanes holding 0..127 -> 8 bytes
XDNA_AVX2 inline void store8(int8_t* dst, __m256i v) {
  const __m256i b = _mm256_packus_epi16(_mm256_packus_epi32(v, v), v);
  const int32_t w0 = _mm_cvtsi128_si32(_mm256_castsi256_si128(b));
  const int32_t w1 = _mm_cvtsi128_si32(_mm256_extracti128_si256(b, 1));
  std::memcpy(dst, &w0, 4);
  std::memcpy(dst + 4, &w1, 4);
}

// From this d = zmax - z on, every weight is 0: E <= kExpTable[0] >> 15 (the
// table's largest entry, shifted at least 15) and the weight rounding below
// sends that to 0.
constexpr int kZeroWeightShift = 15;
constexpr int32_t kZeroWeightD = kZeroWeightShift << softmax::kFracBits;
static_assert(((uint64_t{softmax::kExpTable[0]} >> kZeroWeightShift) * attention::kWeightMax +
               (1u << 23)) >> 24 == 0,
              "weights of d >= kZeroWeightD must round to 0");

// kWide: the weights go out whole as int16 (w16, for attention_pv16_avx2) instead
// of as int8 halves (hi, lo); the same values either way.
template <bool kWide>
XDNA_AVX2 int64_t row_weights_avx2(const int32_t* z, int64_t n, int8_t* hi, int8_t* lo,
                                   int16_t* w16) {
  int64_t j = 0;
  __m256i vmax = _mm256_set1_epi32(softmax::kExcludedLogit);
  for (; j + 8 <= n; j += 8)
    vmax = _mm256_max_epi32(vmax, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(z + j)));
  alignas(32) int32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), vmax);
  int32_t zmax = softmax::kExcludedLogit;
  for (int32_t l : lanes) zmax = l > zmax ? l : zmax;
  for (; j < n; ++j) zmax = z[j] > zmax ? z[j] : zmax;
  if (zmax == softmax::kExcludedLogit) {
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (kWide) w16[i] = 0;
      else hi[i] = lo[i] = 0;
    }
    return 0;
  }
  const __m256i vz = _mm256_set1_epi32(zmax);
  const __m256i mask8 = _mm256_set1_epi32(255), mask7 = _mm256_set1_epi32(127);
  const __m256i wmax = _mm256_set1_epi64x(attention::kWeightMax), half = _mm256_set1_epi64x(1 << 23);
  const int* table = reinterpret_cast<const int*>(softmax::kExpTable);
  // d >= kZeroWeightD (d >> 8 >= 15) gives E <= 2^24 >> 15 = 512 and so weight
  // (512 * 16383 + 2^23) >> 24 = 0: eight such lanes skip the gather (most keys of
  // a peaked row). The same zeros as the full computation.
  const __m256i zero_from = _mm256_set1_epi32(kZeroWeightD - 1);
  __m256i wsum = _mm256_setzero_si256();
  for (j = 0; j + 8 <= n; j += 8) {
    const __m256i d =
        _mm256_sub_epi32(vz, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(z + j)));
    if (_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(d, zero_from))) == 0xFF) {
      if constexpr (kWide) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(w16 + j), _mm_setzero_si128());
      } else {
        std::memset(hi + j, 0, 8);
        std::memset(lo + j, 0, 8);
      }
      continue;
    }
    const __m256i t = _mm256_i32gather_epi32(table, _mm256_and_si256(d, mask8), 4);
    const __m256i ex = _mm256_srlv_epi32(t, _mm256_srli_epi32(d, softmax::kFracBits));
    const __m256i we = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epu32(ex, wmax), half), 24);
    const __m256i wo = _mm256_srli_epi64(
        _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(ex, 32), wmax), half), 24);
    const __m256i w = _mm256_blend_epi32(we, _mm256_slli_epi64(wo, 32), 0xAA);
    wsum = _mm256_add_epi32(wsum, w);
    if constexpr (kWide) {  // 8 lanes <= 16383 -> 8 int16 (packs keeps them as they are)
      const __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(w, w), 0x08);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(w16 + j), _mm256_castsi256_si128(p));
    } else {
      store8(hi + j, _mm256_srli_epi32(w, 7));
      store8(lo + j, _mm256_and_si256(w, mask7));
    }
  }
  alignas(32) int32_t sums[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(sums), wsum);
  int64_t total = 0;
  for (int32_t v : sums) total += v;
  for (; j < n; ++j) {
    const uint32_t e = softmax::exp_term(zmax - z[j]);
    const uint32_t v =
        static_cast<uint32_t>((static_cast<uint64_t>(e) * attention::kWeightMax + (1u << 23)) >> 24);
    if constexpr (kWide) {
      w16[j] = static_cast<int16_t>(v);
    } else {
      hi[j] = static_cast<int8_t>(v >> 7);
      lo[j] = static_cast<int8_t>(v & 127u);
    }
    total += v;
  }
  return total;
}

// GCC 12 warns "__Y may be used uninitialized" inside its own AVX-512 intrinsics
// (their _mm512_undefined_* pass-through operand) when they are inlined into a
// target-attribute function; a false positive, silenced for this code only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
XDNA_AVX512 void score_logits_avx512(const int32_t* acc, int64_t visible, Requant rq,
                                     int32_t* z) {
  const __m512i m = _mm512_set1_epi64(rq.multiplier);
  const __m512i rnd = _mm512_set1_epi64(int64_t{1} << (rq.shift - 1));
  const __m128i e = _mm_cvtsi32_si128(rq.shift);
  const __m512i hi = _mm512_set1_epi64(softmax::kLogitLimit);
  const __m512i lo = _mm512_set1_epi64(-softmax::kLogitLimit);
  int64_t j = 0;
  for (; j + 16 <= visible; j += 16) {
    const __m512i s = _mm512_loadu_si512(acc + j);
    const __m512i ve = _mm512_max_epi64(
        _mm512_min_epi64(_mm512_sra_epi64(_mm512_add_epi64(_mm512_mul_epi32(s, m), rnd), e), hi),
        lo);
    const __m512i so = _mm512_srli_epi64(s, 32);
    const __m512i vo = _mm512_max_epi64(
        _mm512_min_epi64(_mm512_sra_epi64(_mm512_add_epi64(_mm512_mul_epi32(so, m), rnd), e), hi),
        lo);
    _mm512_storeu_si512(z + j, _mm512_mask_blend_epi32(0xAAAA, ve, _mm512_slli_epi64(vo, 32)));
  }
  for (; j < visible; ++j) z[j] = softmax::score_logit(acc[j], rq);
}

XDNA_AVX512 int64_t row_weights_avx512(const int32_t* z, int64_t n, int8_t* hi, int8_t* lo) {
  int64_t j = 0;
  __m512i vmax = _mm512_set1_epi32(softmax::kExcludedLogit);
  for (; j + 16 <= n; j += 16) vmax = _mm512_max_epi32(vmax, _mm512_loadu_si512(z + j));
  int32_t zmax = _mm512_reduce_max_epi32(vmax);
  for (; j < n; ++j) zmax = z[j] > zmax ? z[j] : zmax;
  if (zmax == softmax::kExcludedLogit) {
    for (int64_t i = 0; i < n; ++i) hi[i] = lo[i] = 0;
    return 0;
  }
  const __m512i vz = _mm512_set1_epi32(zmax);
  const __m512i mask8 = _mm512_set1_epi32(255), mask7 = _mm512_set1_epi32(127);
  const __m512i wmax = _mm512_set1_epi64(attention::kWeightMax), half = _mm512_set1_epi64(1 << 23);
  __m512i wsum = _mm512_setzero_si512();
  for (j = 0; j + 16 <= n; j += 16) {
    const __m512i d = _mm512_sub_epi32(vz, _mm512_loadu_si512(z + j));
    const __m512i t = _mm512_i32gather_epi32(_mm512_and_si512(d, mask8), softmax::kExpTable, 4);
    const __m512i ex = _mm512_srlv_epi32(t, _mm512_srli_epi32(d, softmax::kFracBits));
    const __m512i we = _mm512_srli_epi64(_mm512_add_epi64(_mm512_mul_epu32(ex, wmax), half), 24);
    const __m512i wo = _mm512_srli_epi64(
        _mm512_add_epi64(_mm512_mul_epu32(_mm512_srli_epi64(ex, 32), wmax), half), 24);
    const __m512i w = _mm512_mask_blend_epi32(0xAAAA, we, _mm512_slli_epi64(wo, 32));
    wsum = _mm512_add_epi32(wsum, w);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(hi + j),
                     _mm512_cvtepi32_epi8(_mm512_srli_epi32(w, 7)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(lo + j),
                     _mm512_cvtepi32_epi8(_mm512_and_si512(w, mask7)));
  }
  int64_t total = _mm512_reduce_add_epi32(wsum);
  for (; j < n; ++j) {
    const uint32_t e = softmax::exp_term(zmax - z[j]);
    const uint32_t v =
        static_cast<uint32_t>((static_cast<uint64_t>(e) * attention::kWeightMax + (1u << 23)) >> 24);
    hi[j] = static_cast<int8_t>(v >> 7);
    lo[j] = static_cast<int8_t>(v & 127u);
    total += v;
  }
  return total;
}

#define XDNA_SOFTMAX_ROWS_SIMD(ISA)                                                            \
  for (int64_t r = 0; r < rows; ++r) {                                                        \
    const int64_t i = i0 + r;                                                                 \
    const int64_t vis = attention::visible_keys(i, kv, a.causal, a.past_len);                 \
    int32_t* zr = z;                                                                          \
    score_logits_##ISA(scores + r * kv, vis, a.logit_rq, zr);                                 \
    for (int64_t j = vis; j < kv; ++j) zr[j] = softmax::kExcludedLogit;                       \
    if (a.mask)                                                                               \
      attention::row_mask(vis,                                                                \
                          a.mask + b * a.mask_strides[0] + h * a.mask_strides[1] +            \
                              i * a.mask_strides[2],                                          \
                          a.mask_strides[3], zr);                                             \
    wsum[r] = WEIGHTS;                                                                        \
  }

#define WEIGHTS row_weights_avx2<false>(zr, kv, probs + r * kv, probs + (rows + r) * kv, nullptr)
XDNA_AVX2 void softmax_rows_avx2(XDNA_SOFTMAX_ROWS_ARGS) { XDNA_SOFTMAX_ROWS_SIMD(avx2) }
#undef WEIGHTS
// Whole int16 weights, row r at w16 + r * ldw (ldw even >= kv); an odd kv gets a
// zero weight for the padding key of the last pair.
#define WEIGHTS row_weights_avx2<true>(zr, kv, nullptr, nullptr, w16 + r * ldw)
XDNA_AVX2 void softmax_rows16_avx2(const AttentionArgs& a, int64_t b, int64_t h, int64_t i0,
                                   int64_t rows, int64_t kv, const int32_t* scores, int32_t* z,
                                   int16_t* w16, int64_t ldw, int64_t* wsum) {
  XDNA_SOFTMAX_ROWS_SIMD(avx2)
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = kv; j < ldw; ++j) w16[r * ldw + j] = 0;
}
#undef WEIGHTS
#define WEIGHTS row_weights_avx512(zr, kv, probs + r * kv, probs + (rows + r) * kv)
XDNA_AVX512 void softmax_rows_avx512(XDNA_SOFTMAX_ROWS_ARGS) { XDNA_SOFTMAX_ROWS_SIMD(avx512) }
#undef WEIGHTS
#pragma GCC diagnostic pop
#define XDNA_HAVE_X86_ROWS 1
#endif
#ifdef XDNA_HAVE_X86_ROWS
constexpr bool kHaveX86Rows = true;
#else
constexpr bool kHaveX86Rows = false;
#endif

void softmax_rows(XDNA_SOFTMAX_ROWS_ARGS) {
#ifdef XDNA_HAVE_X86_ROWS
  switch (active_isa()) {
    case Isa::kAvx2:
      return softmax_rows_avx2(a, b, h, i0, rows, kv, scores, z, probs, wsum);
    case Isa::kAvx512Vnni:
    case Isa::kAmx:
      return softmax_rows_avx512(a, b, h, i0, rows, kv, scores, z, probs, wsum);
    default:
      break;
  }
#endif
  softmax_rows_portable(a, b, h, i0, rows, kv, scores, z, probs, wsum);
}

// The combined o_acc of one tile -> output rows (shared epilogue formula, per-row
// scale); acc(r, d) is the int64 o_acc of row r, column d.
template <class Acc>
void write_rows_from(const AttentionArgs& a, int64_t rows, int64_t dh, Acc acc,
                     const int64_t* wsum, int8_t* out_i8, float* out_f32) {
  const int64_t hd = a.heads * dh;
  for (int64_t r = 0; r < rows; ++r) {
    if (a.out_float) {
      const float mul = attention::row_out_mul(a.v_scale, wsum[r]);
      for (int64_t d = 0; d < dh; ++d) out_f32[r * hd + d] = attention::output_f32(acc(r, d), mul);
    } else {
      const attention::RowRequant rq = attention::row_requant(a.out_rq, wsum[r]);
      for (int64_t d = 0; d < dh; ++d) out_i8[r * hd + d] = attention::output_int8(acc(r, d), rq);
    }
  }
}

// hi rows [0, rows) and lo rows [rows, 2 rows) of int32 o_acc halves (stride dh).
void write_rows(const AttentionArgs& a, int64_t rows, int64_t dh, const int32_t* oacc,
                const int64_t* wsum, int8_t* out_i8, float* out_f32) {
  write_rows_from(a, rows, dh, [=](int64_t r, int64_t d) {
    return attention::combine(oacc[r * dh + d], oacc[(rows + r) * dh + d]);
  }, wsum, out_i8, out_f32);
}

// The exact GEMM for this tile. The fast paths pack Bt on every call (O(N K));
// for the few-row tiles of decoder steps that packing costs more than the
// product, so those use the portable loop. Both return the same exact int32.
constexpr int kPackMinRows = 8;

void tile_gemm(int M, int N, int K, const int8_t* A, int lda, const int8_t* Bt, int ldb,
               int32_t* C, int ldc) {
  if (M < kPackMinRows) gemm_s8s8s32_nt_portable(M, N, K, A, lda, Bt, ldb, C, ldc);
  else gemm_s8s8s32_nt(M, N, K, A, lda, Bt, ldb, C, ldc);
}

// K and V of every (batch, head) packed once for the whole call (the layout of
// int8_gemm_packed.h): Q.K^T of a tile is A = its query rows times Bt = K
// (N = keys, K = head_dim), P.V is A = the weight halves times B = V (K = keys,
// N = head_dim, read in place from the [keys, heads * head_dim] rows, so no
// transposed copy of V either). Why: gemm_s8s8s32_nt packs its Bt on every call,
// i.e. once per 64-row query tile; the Whisper encoder (1500 queries, 24 tiles per
// head) spent more time packing than in its softmax. A causal tile sees a key
// prefix: Q.K^T uses the first `kv` packed columns (whole panels, the same
// column sums); P.V's k prefix would change the packed groups and column sums, so
// such tiles keep the per-tile path. Both give the same exact int32.
struct PackedHeads {
  int dh = 0, tk = 0;            // head_dim, keys
  int kp_qk = 0, np_qk = 0;      // Q.K^T's B: K = dh, N = tk
  int kp_pv = 0, np_pv = 0;      // P.V's B: K = tk, N = dh
  std::vector<int8_t> k_data, v_data;
  std::vector<int32_t> k_colsum, v_colsum;
  // Instead of v_data on the wide AVX2 path: V as int16 key pairs (attention_pv.h),
  // kpairs x dhp pairs per head.
  int kpairs = 0, dhp = 0;
  std::vector<int16_t> v16;

  const int16_t* pv16(int64_t bh) const {
    return v16.data() + bh * static_cast<int64_t>(kpairs) * dhp * 2;
  }

  // Q.K^T against the first kv keys of head bh (whole panels: same data, same sums).
  PackedB qk(int64_t bh, int kv) const {
    PackedB b;
    b.K = dh;
    b.N = kv;
    b.Kp = kp_qk;
    b.Np = (kv + kPanelCols - 1) / kPanelCols * kPanelCols;
    b.data = k_data.data() + bh * static_cast<int64_t>(np_qk) * kp_qk;
    b.colsum = k_colsum.data() + bh * np_qk;
    return b;
  }
  // P.V over all keys of head bh.
  PackedB pv(int64_t bh) const {
    PackedB b;
    b.K = tk;
    b.N = dh;
    b.Kp = kp_pv;
    b.Np = np_pv;
    b.data = v_data.data() + bh * static_cast<int64_t>(np_pv) * kp_pv;
    b.colsum = v_colsum.data() + bh * np_pv;
    return b;
  }
};

// V of head (b, h) -> the int16 key-pair layout of attention_pv.h.
void pack_v16(const AttentionArgs& a, int64_t b, int64_t h, int kpairs, int dhp, int16_t* dst) {
  const int64_t hd = a.heads * a.head_dim;
  const int8_t* src = a.v + b * a.k_len * hd + h * a.head_dim;
  std::fill(dst, dst + static_cast<int64_t>(kpairs) * dhp * 2, int16_t{0});
  for (int64_t j = 0; j < a.k_len; ++j)
    for (int64_t d = 0; d < a.head_dim; ++d)
      dst[((j / 2) * dhp + d) * 2 + (j & 1)] = src[j * hd + d];
}

// wide: pack V as int16 pairs (v16) for the AVX2 P.V path, not as int8 panels.
void pack_heads(const AttentionArgs& a, PackedHeads& ph, bool wide) {
  const int64_t hd = a.heads * a.head_dim, bh = a.batch * a.heads;
  const int dh = static_cast<int>(a.head_dim), tk = static_cast<int>(a.k_len);
  ph.dh = dh;
  ph.tk = tk;
  ph.kp_qk = (dh + kKGroup - 1) / kKGroup * kKGroup;
  ph.np_qk = (tk + kPanelCols - 1) / kPanelCols * kPanelCols;
  ph.kp_pv = (tk + kKGroup - 1) / kKGroup * kKGroup;
  ph.np_pv = (dh + kPanelCols - 1) / kPanelCols * kPanelCols;
  ph.k_data.resize(static_cast<std::size_t>(bh * ph.np_qk * ph.kp_qk));
  ph.k_colsum.resize(static_cast<std::size_t>(bh * ph.np_qk));
  if (wide) {
    ph.kpairs = (tk + 1) / 2;
    ph.dhp = (dh + kPv16Cols - 1) / kPv16Cols * kPv16Cols;
    ph.v16.resize(static_cast<std::size_t>(bh * ph.kpairs * ph.dhp * 2));
  } else {
    ph.v_data.resize(static_cast<std::size_t>(bh * ph.np_pv * ph.kp_pv));
    ph.v_colsum.resize(static_cast<std::size_t>(bh * ph.np_pv));
  }
  parallel_for(static_cast<std::size_t>(bh), 1, [&](std::size_t i0, std::size_t i1) {
    for (std::size_t i = i0; i < i1; ++i) {
      const int64_t b = static_cast<int64_t>(i) / a.heads, h = static_cast<int64_t>(i) % a.heads;
      const int64_t off = b * a.k_len * hd + h * a.head_dim;
      pack_b(dh, tk, a.k + off, static_cast<long>(hd), /*transposed=*/true,
             ph.k_data.data() + static_cast<int64_t>(i) * ph.np_qk * ph.kp_qk,
             ph.k_colsum.data() + static_cast<int64_t>(i) * ph.np_qk);
      if (wide)
        pack_v16(a, b, h, ph.kpairs, ph.dhp,
                 ph.v16.data() + static_cast<int64_t>(i) * ph.kpairs * ph.dhp * 2);
      else
        pack_b(tk, dh, a.v + off, static_cast<long>(hd), /*transposed=*/false,
               ph.v_data.data() + static_cast<int64_t>(i) * ph.np_pv * ph.kp_pv,
               ph.v_colsum.data() + static_cast<int64_t>(i) * ph.np_pv);
    }
  });
}

// C[rows, b.N] (row stride ldc) = A . packed B, exact int32.
void packed_gemm(const PackedB& b, const int8_t* A, int lda, int rows, int32_t* C, int ldc) {
  Epilogue epi;
  epi.kind = EpilogueKind::kInt32;
  epi.out = C;
  epi.ldo = ldc;
  packed_kernel_for_active_isa()(b, A, lda, 0, rows, 0, b.Np / kPanelCols, epi);
}

}  // namespace

void attention_int8(const AttentionArgs& a) {
  if (a.batch <= 0 || a.q_len <= 0 || a.heads <= 0 || a.head_dim <= 0) return;
  const int64_t hd = a.heads * a.head_dim;
  const int64_t tk = a.k_len, dh = a.head_dim;
  if (tk <= 0) {  // no keys: every row is all-excluded -> zeros
    if (a.out_float) std::fill(a.out_f32, a.out_f32 + a.batch * a.q_len * hd, 0.0f);
    else std::fill(a.out_i8, a.out_i8 + a.batch * a.q_len * hd, int8_t{0});
    return;
  }
  const int64_t tiles = (a.q_len + attention::kQueryTile - 1) / attention::kQueryTile;
  // Packing per call pays off from two full tiles per head (encoder, prefill);
  // decoder steps (one query row) keep the unpacked few-row path, and the
  // portable path its unpacked loop (the portable packed kernel is slower).
  const bool prepack = a.q_len >= 2 * attention::kQueryTile && a.k_len <= (1 << 30) &&
                       active_isa() != Isa::kPortable;
  // AVX2 (no VNNI): P.V with whole int16 weights, one vpmaddwd per key pair instead
  // of two vpmaddubsw GEMMs of int8 halves (attention_pv_avx2.cpp); every tile of a
  // non-causal call sees all keys, so every tile takes it.
  const bool wide = prepack && !a.causal && kHaveX86Rows && active_isa() == Isa::kAvx2;
  PackedHeads ph;
  std::vector<int8_t> vt;
  if (prepack) pack_heads(a, ph, wide);
  if (!prepack || a.causal) transpose_values(a, vt);  // causal tiles' P.V: per-tile path
  const std::size_t tasks = static_cast<std::size_t>(a.batch * a.heads * tiles);
  // Each pool thread pulls (batch, head, tile) tasks from a shared counter rather
  // than taking a fixed half: on a shared machine a thread that is descheduled for
  // a while does not leave the other waiting at the end (as gemm_packed_parallel).
  // Scratch is allocated once per thread.
  const std::size_t workers = std::min<std::size_t>(tasks, static_cast<std::size_t>(num_threads()));
  std::atomic<std::size_t> next{0};
  parallel_for(workers, 1, [&](std::size_t, std::size_t) {
    const int64_t rows_max = attention::kQueryTile;
    std::vector<int32_t> scores(static_cast<std::size_t>(rows_max * tk));
    std::vector<int32_t> z(static_cast<std::size_t>(tk));
    std::vector<int64_t> wsum(static_cast<std::size_t>(rows_max));
    std::vector<int8_t> probs(static_cast<std::size_t>(wide ? 0 : 2 * rows_max * tk));
    std::vector<int32_t> oacc(static_cast<std::size_t>(wide ? 0 : 2 * rows_max * dh));
    std::vector<int16_t> w16(static_cast<std::size_t>(wide ? rows_max * 2 * ph.kpairs : 0));
    std::vector<int64_t> acc64(static_cast<std::size_t>(wide ? rows_max * ph.dhp : 0));
    for (std::size_t t = next++; t < tasks; t = next++) {
      const int64_t tile = static_cast<int64_t>(t) % tiles;
      const int64_t h = (static_cast<int64_t>(t) / tiles) % a.heads;
      const int64_t b = static_cast<int64_t>(t) / tiles / a.heads;
      const int64_t i0 = tile * attention::kQueryTile;
      const int64_t rows = std::min<int64_t>(attention::kQueryTile, a.q_len - i0);
      int8_t* out_i8 = a.out_float ? nullptr : a.out_i8 + (b * a.q_len + i0) * hd + h * dh;
      float* out_f32 = a.out_float ? a.out_f32 + (b * a.q_len + i0) * hd + h * dh : nullptr;
      // Keys any row of this tile can see; columns past it are excluded anyway.
      const int64_t kv = attention::visible_keys(i0 + rows - 1, tk, a.causal, a.past_len);
      if (kv == 0) {  // every row of the tile fully excluded: zeros
        std::fill(wsum.begin(), wsum.end(), 0);
        write_rows_from(a, rows, dh, [](int64_t, int64_t) { return int64_t{0}; }, wsum.data(),
                        out_i8, out_f32);
        continue;
      }
      const int8_t* qt = a.q + (b * a.q_len + i0) * hd + h * dh;
      const int8_t* kh = a.k + b * tk * hd + h * dh;
      const int64_t bh = b * a.heads + h;
      if (prepack)  // any row count: the packed kernel is exact for every M
        packed_gemm(ph.qk(bh, static_cast<int>(kv)), qt, static_cast<int>(hd),
                    static_cast<int>(rows), scores.data(), static_cast<int>(kv));
      else
        tile_gemm(static_cast<int>(rows), static_cast<int>(kv), static_cast<int>(dh), qt,
                  static_cast<int>(hd), kh, static_cast<int>(hd), scores.data(),
                  static_cast<int>(kv));
#ifdef XDNA_HAVE_X86_ROWS
      if (wide) {  // kv == tk here (not causal)
        const int64_t ldw = 2 * ph.kpairs, dhp = ph.dhp;
        softmax_rows16_avx2(a, b, h, i0, rows, kv, scores.data(), z.data(), w16.data(), ldw,
                            wsum.data());
        attention_pv16_avx2(w16.data(), static_cast<long>(ldw), static_cast<int>(rows),
                            ph.kpairs, ph.pv16(bh), ph.dhp, acc64.data());
        const int64_t* acc = acc64.data();
        write_rows_from(a, rows, dh, [=](int64_t r, int64_t d) { return acc[r * dhp + d]; },
                        wsum.data(), out_i8, out_f32);
        continue;
      }
#endif
      softmax_rows(a, b, h, i0, rows, kv, scores.data(), z.data(), probs.data(), wsum.data());
      // hi and lo halves stacked as 2*rows A rows: one GEMM call for both.
      if (prepack && kv == tk) {
        packed_gemm(ph.pv(bh), probs.data(), static_cast<int>(kv), static_cast<int>(2 * rows),
                    oacc.data(), static_cast<int>(dh));
      } else {
        const int8_t* vth = vt.data() + bh * dh * tk;
        tile_gemm(static_cast<int>(2 * rows), static_cast<int>(dh), static_cast<int>(kv),
                  probs.data(), static_cast<int>(kv), vth, static_cast<int>(tk), oacc.data(),
                  static_cast<int>(dh));
      }
      write_rows(a, rows, dh, oacc.data(), wsum.data(), out_i8, out_f32);
    }
  });
}

}  // namespace xdna
