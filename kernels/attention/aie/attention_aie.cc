// AIE2 (npu1) core functions of the attention kernel. Compiled with Peano
// (clang++ --target=aie2-none-unknown-elf) by kernels/build_xclbins.py.
//
// One core owns a block of kRows query rows of one (batch, head) and walks the
// keys in blocks of kKeys, twice:
//   pass 1: scores -> logits -> running row maximum of z (exact int32 max);
//   pass 2: scores again -> logits -> weights w (hi, lo) with the final maximum,
//           W += w, acc_hi += hi . V, acc_lo += lo . V (exact int32 sums);
//   end:    the per-row epilogue of attention.h.
// Recomputing Q.K in pass 2 (instead of an online rescale, as flash attention
// does) keeps the result bit-identical to the host: every quantity is the
// header's integer arithmetic and every sum is exact, so block order and
// vector width cannot change a bit. Scores and weights never leave the core.
//
// Layouts (row-major, the design's DMA delivers them so):
//   q     [kRows][kDh] int8       k, v  [kKeys][kDh] int8 (one key block)
//   mask  [kRows][kKeys] f32      (optional; the [Tq, Tk] mask's block)
//   out   [kRows][kDh] int8 or f32
//   params int32[16]: see enum Param (one launch argument, read once per launch).
#include <aie_api/aie.hpp>
#include <cstdint>

#include "../attention.h"

namespace {

constexpr int kRows = 32;  // query rows per core (two cores per 64-row query tile)
constexpr int kKeys = 64;  // keys per block
constexpr int kDh = 64;    // head dim of the NPU design (Whisper tiny/base)
constexpr int kLanes = 32;

enum Param : int {
  kLogitMult = 0,
  kLogitShift = 1,
  kCausal = 2,
  kPastLen = 3,
  kKeyLen = 4,     // real Tk; keys >= Tk (DMA padding) are excluded
  kOutFloat = 5,   // 1: float32 output
  kOutMult = 6,    // int8 output: make_requant(v_scale / out_scale)
  kOutShift = 7,
  kVScaleBits = 8,  // float output: bit pattern of fp32 v_scale
  kGroupsPerHead = 9,  // query groups (kGroupRows rows each) per (batch, head)
};
constexpr int kCoresPerColumn = 4;
constexpr int kColumns = 4;
constexpr int kGroupRows = kRows * kCoresPerColumn;  // rows of one column group

// Per-core state (each core has its own copy of this ELF's data).
int32_t g_zmax[kRows];
int64_t g_wsum[kRows];
alignas(32) int32_t g_acc_hi[kRows * kDh];
alignas(32) int32_t g_acc_lo[kRows * kDh];
alignas(32) int32_t g_scores[kRows * kKeys];
alignas(32) int32_t g_z[kKeys];
alignas(32) int8_t g_hi[kKeys];
alignas(32) int8_t g_lo[kKeys];
int32_t g_key_block = 0;  // key block index within the current pass
int32_t g_first_row = 0;  // query index (within its head) of this core's first row

// Exact int32 dot product of two int8 rows of kDh (= 2 x kLanes) elements.
inline int32_t dot_dh(const int8_t* a, const int8_t* b) {
  aie::accum<acc32, kLanes> acc = aie::mul(aie::load_v<kLanes>(a), aie::load_v<kLanes>(b));
  acc = aie::mac(acc, aie::load_v<kLanes>(a + kLanes), aie::load_v<kLanes>(b + kLanes));
  return aie::reduce_add(acc.template to_vector<int32_t>(0));
}

// Scores of the block: g_scores[r][j] = q[r] . k[j].
void block_scores(const int8_t* q, const int8_t* k) {
  for (int r = 0; r < kRows; ++r)
    for (int j = 0; j < kKeys; ++j) g_scores[r * kKeys + j] = dot_dh(q + r * kDh, k + j * kDh);
}

// Logits of row r of the block (attention.h row_logits on the block's columns).
void block_logits(const int32_t* params, int32_t query_row, int r, const float* mask) {
  const int64_t key0 = static_cast<int64_t>(g_key_block) * kKeys;
  int64_t vis = xdna::attention::visible_keys(query_row, params[kKeyLen], params[kCausal] != 0,
                                              params[kPastLen]);
  int64_t vis_block = vis - key0;  // visible columns of this block
  if (vis_block < 0) vis_block = 0;
  if (vis_block > kKeys) vis_block = kKeys;
  const xdna::Requant rq{params[kLogitMult], params[kLogitShift]};
  xdna::attention::row_logits(g_scores + r * kKeys, vis_block, kKeys, rq,
                              mask ? mask + r * kKeys : nullptr, 1, g_z);
}

void pass1_block(const int8_t* q, const int8_t* k, const float* mask, const int32_t* params) {
  block_scores(q, k);
  for (int r = 0; r < kRows; ++r) {
    block_logits(params, g_first_row + r, r, mask);
    int32_t m = g_zmax[r];
    for (int j = 0; j < kKeys; ++j) m = g_z[j] > m ? g_z[j] : m;
    g_zmax[r] = m;
  }
  ++g_key_block;
}

void pass2_block(const int8_t* q, const int8_t* k, const int8_t* v, const float* mask,
                 const int32_t* params) {
  block_scores(q, k);
  for (int r = 0; r < kRows; ++r) {
    block_logits(params, g_first_row + r, r, mask);
    const int32_t zmax = g_zmax[r];
    if (zmax == xdna::softmax::kExcludedLogit) continue;  // all-excluded row: stays 0
    // row_weights of attention.h with the row maximum of the whole key range
    for (int j = 0; j < kKeys; ++j) {
      const uint32_t e = xdna::softmax::exp_term(zmax - g_z[j]);
      const uint32_t w = static_cast<uint32_t>(
          (static_cast<uint64_t>(e) * xdna::attention::kWeightMax + (1u << 23)) >> 24);
      g_hi[j] = static_cast<int8_t>(w >> 7);
      g_lo[j] = static_cast<int8_t>(w & 127u);
      g_wsum[r] += w;
    }
    // acc[r][:] += sum_j hi[j] * v[j][:]  (and lo), kDh = 2 x kLanes lanes
    for (int c = 0; c < kDh; c += kLanes) {
      aie::accum<acc32, kLanes> ah, al;
      ah.from_vector(aie::load_v<kLanes>(g_acc_hi + r * kDh + c));
      al.from_vector(aie::load_v<kLanes>(g_acc_lo + r * kDh + c));
      for (int j = 0; j < kKeys; ++j) {
        const aie::vector<int8_t, kLanes> vr = aie::load_v<kLanes>(v + j * kDh + c);
        ah = aie::mac(ah, vr, g_hi[j]);
        al = aie::mac(al, vr, g_lo[j]);
      }
      aie::store_v(g_acc_hi + r * kDh + c, ah.template to_vector<int32_t>(0));
      aie::store_v(g_acc_lo + r * kDh + c, al.template to_vector<int32_t>(0));
    }
  }
  ++g_key_block;
}

}  // namespace

extern "C" {

// Starts this core's next query block. Groups (kGroupRows query rows of one
// batch/head) go round-robin over the n_cols columns the design uses (4 alone,
// 3 inside the fused attn_block, whose out-projection takes the 4th), so round
// k of column `col` is group g = col + n_cols * k; the core's rows start at
// (g mod groups_per_head) * kGroupRows + core_row * kRows. `round` is the core's round counter.
void xdna_attn_begin_cols(int32_t* __restrict round, const int32_t* __restrict params,
                          int32_t col, int32_t core_row, int32_t n_cols) {
  const int32_t g = col + n_cols * round[0];
  g_first_row = (g % params[kGroupsPerHead]) * kGroupRows + core_row * kRows;
  round[0] += 1;
  for (int r = 0; r < kRows; ++r) {
    g_zmax[r] = xdna::softmax::kExcludedLogit;
    g_wsum[r] = 0;
  }
  for (int i = 0; i < kRows * kDh; ++i) g_acc_hi[i] = g_acc_lo[i] = 0;
  g_key_block = 0;
}

// The standalone design's entry: groups go round-robin over all 4 columns.
void xdna_attn_begin(int32_t* __restrict round, const int32_t* __restrict params, int32_t col,
                     int32_t core_row) {
  xdna_attn_begin_cols(round, params, col, core_row, kColumns);
}

// Between the passes: key blocks are counted again from 0.
void xdna_attn_rewind() { g_key_block = 0; }

void xdna_attn_pass1(const int8_t* __restrict q, const int8_t* __restrict k,
                     const int32_t* __restrict params) {
  pass1_block(q, k, nullptr, params);
}

void xdna_attn_pass1_masked(const int8_t* __restrict q, const int8_t* __restrict k,
                            const float* __restrict mask, const int32_t* __restrict params) {
  pass1_block(q, k, mask, params);
}

void xdna_attn_pass2(const int8_t* __restrict q, const int8_t* __restrict k,
                     const int8_t* __restrict v, const int32_t* __restrict params) {
  pass2_block(q, k, v, nullptr, params);
}

void xdna_attn_pass2_masked(const int8_t* __restrict q, const int8_t* __restrict k,
                            const int8_t* __restrict v, const float* __restrict mask,
                            const int32_t* __restrict params) {
  pass2_block(q, k, v, mask, params);
}

// The epilogue of attention.h: int8 output [kRows][kDh].
void xdna_attn_end_i8(int8_t* __restrict out, const int32_t* __restrict params) {
  const xdna::Requant out_rq{params[kOutMult], params[kOutShift]};
  for (int r = 0; r < kRows; ++r) {
    const xdna::attention::RowRequant rq = xdna::attention::row_requant(out_rq, g_wsum[r]);
    for (int d = 0; d < kDh; ++d)
      out[r * kDh + d] = xdna::attention::output_int8(
          xdna::attention::combine(g_acc_hi[r * kDh + d], g_acc_lo[r * kDh + d]), rq);
  }
}

// The epilogue of attention.h: float32 output [kRows][kDh]; v_scale arrives as
// the bit pattern of an fp32 in params[kVScaleBits].
void xdna_attn_end_f32(float* __restrict out, const int32_t* __restrict params) {
  union {
    int32_t i;
    float f;
  } vs{params[kVScaleBits]};
  for (int r = 0; r < kRows; ++r) {
    const float mul = xdna::attention::row_out_mul(vs.f, g_wsum[r]);
    for (int d = 0; d < kDh; ++d)
      out[r * kDh + d] = xdna::attention::output_f32(
          xdna::attention::combine(g_acc_hi[r * kDh + d], g_acc_lo[r * kDh + d]), mul);
  }
}

}  // extern "C"
