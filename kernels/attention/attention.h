// Attention arithmetic contract (host emulator AND aie/attention_aie.cc).
//
// Per (batch b, head h) and query row i:
//   acc_ij = sum_d Q[b,i,h,d] * K[b,j,h,d]             exact int32 (int8 x int8)
//   z_ij   = softmax::score_logit(acc_ij, logit_rq)    logit_rq = make_requant(
//                                                      q_s*k_s*softmax_scale*256/ln 2)
//            (+ softmax::mask_logit(mask[b,h,i,j]) when a mask is given)
//            excluded when causal and j > i + past_len
//   E_ij   = softmax::exp_term(max_j z_ij - z_ij)      2^24 at the row maximum
//   w_ij   = (E_ij * 16383 + 2^23) >> 24               14-bit weight, 16383 at the maximum
//   H_ij   = w_ij >> 7,  L_ij = w_ij & 127              two int8 operands in 0..127
//   W_i    = sum_j w_ij                                exact (0 for an all-excluded row)
//   o_acc  = 128 * sum_j H_ij V[b,j,h,d] + sum_j L_ij V[b,j,h,d]
//            (two exact int32 GEMM results combined in int64)
//   out    = sat127((o_acc * m_i + 2^(e_i-1)) >> e_i)   (m_i, e_i) = row_requant(out_rq, W_i)
//                                                      out_rq = make_requant(v_s / out_s)
//        or  float(o_acc) * (fp32(v_s) / fp32(W_i))    (fp32, round to nearest; 0 if W_i = 0)
//
// Why the weights are scaled to the row maximum and carried in 14 bits (two
// int8 halves) rather than as int8 probabilities scaled to the row sum (as
// the softmax kernel outputs): with 1500 keys a diffuse row has every
// probability below half an int8 step (1/254) and would round to all zeros,
// and a mid-entropy row loses its whole tail (measured cosine 0.998 with 7-bit
// weights vs 0.99999 with 14-bit ones; README). The division by the row sum
// moves into a per-row output scale (deferred normalisation). Both GEMMs are
// exact, so the bytes depend only on this header and the shared epilogue
// formula, never on the GEMM implementation or the tile order.
#pragma once
#include <cstdint>

#include "../common/epilogue.h"
#include "../softmax/softmax.h"

namespace xdna {
namespace attention {

constexpr int kQueryTile = 64;        // query rows per tile (one AIE core's block)
constexpr int kMaxHeadDim = 4096;     // |acc| <= 128*127*Dh stays far inside int32
constexpr int64_t kMaxKeys = 131072;  // 127*127*Tk < 2^31 for each P.V accumulator
constexpr uint32_t kWeightMax = 16383;  // 127 * 128 + 127: two int8 halves

// Keys query row i may attend to: [0, visible).
inline int64_t visible_keys(int64_t i, int64_t tk, bool causal, int64_t past_len) {
  if (!causal) return tk;
  const int64_t v = i + past_len + 1;
  return v < 0 ? 0 : (v > tk ? tk : v);
}

// One row of Q.K accumulators -> fixed-point logits z[0..n); entries at or
// beyond `visible` are excluded. mask (nullable) is read at mask[j * mask_stride].
// The mask step of row_logits alone (host SIMD paths compute the score logits
// of the visible entries themselves, then call this).
inline void row_mask(int64_t visible, const float* mask, int64_t mask_stride, int32_t* z) {
  for (int64_t j = 0; j < visible; ++j)
    z[j] = softmax::add_mask(z[j], softmax::mask_logit(mask[j * mask_stride]));
}

inline void row_logits(const int32_t* acc, int64_t visible, int64_t n, Requant logit_rq,
                       const float* mask, int64_t mask_stride, int32_t* z) {
  for (int64_t j = 0; j < visible; ++j) z[j] = softmax::score_logit(acc[j], logit_rq);
  for (int64_t j = visible; j < n; ++j) z[j] = softmax::kExcludedLogit;
  if (mask) row_mask(visible, mask, mask_stride, z);
}

// Logits -> weight halves hi[0..n), lo[0..n) (0..127 each); returns W = sum w.
inline int64_t row_weights(const int32_t* z, int64_t n, int8_t* hi, int8_t* lo) {
  int32_t zmax = softmax::kExcludedLogit;
  for (int64_t j = 0; j < n; ++j) zmax = z[j] > zmax ? z[j] : zmax;
  if (zmax == softmax::kExcludedLogit) {
    for (int64_t j = 0; j < n; ++j) hi[j] = lo[j] = 0;
    return 0;
  }
  int64_t w = 0;
  for (int64_t j = 0; j < n; ++j) {
    const uint32_t e = softmax::exp_term(zmax - z[j]);
    const uint32_t v =
        static_cast<uint32_t>((static_cast<uint64_t>(e) * kWeightMax + (1u << 23)) >> 24);
    hi[j] = static_cast<int8_t>(v >> 7);
    lo[j] = static_cast<int8_t>(v & 127u);
    w += v;
  }
  return w;
}

// The two GEMM halves -> the exact weighted sum.
inline int64_t combine(int32_t acc_hi, int32_t acc_lo) {
  return static_cast<int64_t>(acc_hi) * 128 + acc_lo;
}

// Per-row requant: out_rq (= v_s / out_s) divided by the row weight W > 0,
// with a 23-bit multiplier so o_acc * m fits int64:
//   Lw = bitlen(W); rw = floor(2^(29+Lw) / W) in (2^29, 2^30];
//   m = (out_rq.m * rw + 2^37) >> 38;  e = out_rq.e + Lw - 9;
//   then m halved (e decremented) until e <= 62. W == 0 gives {0, 31}.
struct RowRequant {
  int64_t multiplier;  // < 2^23
  int shift;           // 1..62
};
inline RowRequant row_requant(Requant out_rq, int64_t w) {
  if (w <= 0 || out_rq.multiplier == 0) return RowRequant{0, 31};
  int lw = 0;
  for (int64_t t = w; t; t >>= 1) ++lw;
  const int64_t rw = (int64_t{1} << (29 + lw)) / w;
  int64_t m = (static_cast<int64_t>(out_rq.multiplier) * rw + (int64_t{1} << 37)) >> 38;
  int e = out_rq.shift + lw - 9;
  while (e > 62) {
    m >>= 1;
    --e;
  }
  return RowRequant{m, e};
}

// The shared epilogue's requantize formula on the int64 weighted sum.
inline int8_t output_int8(int64_t acc, RowRequant rq) {
  const int64_t rounded = (acc * rq.multiplier + (int64_t{1} << (rq.shift - 1))) >> rq.shift;
  return saturate_int8(rounded);
}

// Float output multiplier of a row: fp32(v_s) / fp32(W) (IEEE), 0 for W == 0.
inline float row_out_mul(float v_scale, int64_t w) {
  return w > 0 ? v_scale / static_cast<float>(w) : 0.0f;
}

// float(o_acc) * row_mul (two fp32 roundings, no contraction) -- the shared
// dequantize with bias 0.
inline float output_f32(int64_t acc, float row_mul) {
  const float a = static_cast<float>(acc);
  const float prod = a * row_mul;
  return prod + 0.0f;
}

}  // namespace attention
}  // namespace xdna
