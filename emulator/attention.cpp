// Host build of the attention kernel. Q.K^T and P.V go through the exact
// int8 GEMM (emulator/int8_gemm.h), so its SIMD path cannot change a bit; the
// softmax between them is the integer contract of kernels/attention/attention.h.
#include <algorithm>
#include <vector>

#include "../kernels/attention/attention.h"
#include "attention_host.h"
#include "cpu_features.h"
#include "int8_gemm.h"
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
__attribute__((target("avx2,fma"))) void softmax_rows_avx2(XDNA_SOFTMAX_ROWS_ARGS) {
  XDNA_SOFTMAX_ROWS_BODY
}
__attribute__((target("avx2,fma,avx512f,avx512bw,avx512dq,avx512vl"))) void softmax_rows_avx512(
    XDNA_SOFTMAX_ROWS_ARGS) {
  XDNA_SOFTMAX_ROWS_BODY
}
#define XDNA_HAVE_X86_ROWS 1
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

// o_acc of one tile -> output rows (shared epilogue formula, per-row scale).
void write_rows(const AttentionArgs& a, int64_t rows, int64_t dh, const int32_t* oacc,
                const int64_t* wsum, int8_t* out_i8, float* out_f32) {
  const int64_t hd = a.heads * dh;
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* acc_hi = oacc + r * dh;
    const int32_t* acc_lo = oacc + (rows + r) * dh;
    if (a.out_float) {
      const float mul = attention::row_out_mul(a.v_scale, wsum[r]);
      for (int64_t d = 0; d < dh; ++d)
        out_f32[r * hd + d] = attention::output_f32(attention::combine(acc_hi[d], acc_lo[d]), mul);
    } else {
      const attention::RowRequant rq = attention::row_requant(a.out_rq, wsum[r]);
      for (int64_t d = 0; d < dh; ++d)
        out_i8[r * hd + d] = attention::output_int8(attention::combine(acc_hi[d], acc_lo[d]), rq);
    }
  }
}

// The exact GEMM for this tile. The fast paths pack Bt on every call (O(N K));
// for the few-row tiles of decoder steps that packing costs more than the
// product, so those use the portable loop. Both return the same exact int32.
void tile_gemm(int M, int N, int K, const int8_t* A, int lda, const int8_t* Bt, int ldb,
               int32_t* C, int ldc) {
  constexpr int kPackMinRows = 8;
  if (M < kPackMinRows) gemm_s8s8s32_nt_portable(M, N, K, A, lda, Bt, ldb, C, ldc);
  else gemm_s8s8s32_nt(M, N, K, A, lda, Bt, ldb, C, ldc);
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
  std::vector<int8_t> vt;
  transpose_values(a, vt);
  const int64_t tiles = (a.q_len + attention::kQueryTile - 1) / attention::kQueryTile;
  const int64_t tasks = a.batch * a.heads * tiles;
  parallel_for(static_cast<std::size_t>(tasks), 1, [&](std::size_t t0, std::size_t t1) {
    const int64_t rows_max = attention::kQueryTile;
    std::vector<int32_t> scores(static_cast<std::size_t>(rows_max * tk));
    std::vector<int32_t> z(static_cast<std::size_t>(tk));
    std::vector<int64_t> wsum(static_cast<std::size_t>(rows_max));
    std::vector<int8_t> probs(static_cast<std::size_t>(2 * rows_max * tk));
    std::vector<int32_t> oacc(static_cast<std::size_t>(2 * rows_max * dh));
    for (std::size_t t = t0; t < t1; ++t) {
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
        std::fill(oacc.begin(), oacc.end(), 0);
        write_rows(a, rows, dh, oacc.data(), wsum.data(), out_i8, out_f32);
        continue;
      }
      const int8_t* qt = a.q + (b * a.q_len + i0) * hd + h * dh;
      const int8_t* kh = a.k + b * tk * hd + h * dh;
      tile_gemm(static_cast<int>(rows), static_cast<int>(kv), static_cast<int>(dh), qt,
                      static_cast<int>(hd), kh, static_cast<int>(hd), scores.data(),
                      static_cast<int>(kv));
      softmax_rows(a, b, h, i0, rows, kv, scores.data(), z.data(), probs.data(), wsum.data());
      // hi and lo halves stacked as 2*rows A rows: one GEMM call for both.
      const int8_t* vth = vt.data() + (b * a.heads + h) * dh * tk;
      tile_gemm(static_cast<int>(2 * rows), static_cast<int>(dh), static_cast<int>(kv),
                      probs.data(), static_cast<int>(kv), vth, static_cast<int>(tk), oacc.data(),
                      static_cast<int>(dh));
      write_rows(a, rows, dh, oacc.data(), wsum.data(), out_i8, out_f32);
    }
  });
}

}  // namespace xdna
