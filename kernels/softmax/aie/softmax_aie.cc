// AIE2 (npu1) core functions of the softmax kernel. Compiled with Peano
// (clang++ --target=aie2-none-unknown-elf) by kernels/build_xclbins.py.
//
// The arithmetic is softmax.h's, called directly, so every core produces the
// bytes the host emulator produces. Only the row maximum is vectorised (an
// exact integer reduction, order-free); the exp-table lookup has no vector
// gather on AIE2 and stays a scalar loop the compiler software-pipelines.
#include <aie_api/aie.hpp>
#include <cstdint>

#include "../softmax.h"

namespace {

constexpr int kMaxN = 2048;  // design.py keeps N <= kMaxN (local-memory budget)
alignas(32) int32_t g_z[kMaxN];
alignas(32) uint32_t g_work[kMaxN];

// Run-time parameters written by the runtime sequence (design.py RTP_* order).
enum Rtp : int {
  kRtpLogitMult = 0,
  kRtpLogitShift = 1,
  kRtpCausal = 2,
  kRtpQueryLen = 3,
  kRtpPastLen = 4,
};

int32_t vector_row_max(const int32_t* z, int32_t n) {
  constexpr int kLanes = 16;
  int32_t m = xdna::softmax::kExcludedLogit;
  int32_t j = 0;
  if (n >= kLanes) {
    aie::vector<int32_t, kLanes> acc = aie::load_v<kLanes>(z);
    for (j = kLanes; j + kLanes <= n; j += kLanes) acc = aie::max(acc, aie::load_v<kLanes>(z + j));
    m = aie::reduce_max(acc);
  }
  for (; j < n; ++j) m = z[j] > m ? z[j] : m;
  return m;
}

// normalize_row of softmax.h with the maximum from vector_row_max (same value).
void normalize(const int32_t* z, int32_t n, int8_t* p) {
  const int32_t zmax = vector_row_max(z, n);
  if (zmax == xdna::softmax::kExcludedLogit) {
    for (int32_t j = 0; j < n; ++j) p[j] = 0;
    return;
  }
  uint64_t sum = 0;
  for (int32_t j = 0; j < n; ++j) {
    const uint32_t e = xdna::softmax::exp_term(zmax - z[j]);
    g_work[j] = e;
    sum += e;
  }
  const xdna::softmax::Recip rc = xdna::softmax::row_recip(sum);
  for (int32_t j = 0; j < n; ++j) p[j] = xdna::softmax::normalize(g_work[j], rc);
}

// first_row: global index of the block's first row (the worker advances it).
void block(const int8_t* x, const float* mask, int8_t* p, const int32_t* rtp, int32_t first_row,
           int32_t rows, int32_t n) {
  const xdna::Requant rq{rtp[kRtpLogitMult], rtp[kRtpLogitShift]};
  const bool causal = rtp[kRtpCausal] != 0;
  const int32_t query_len = rtp[kRtpQueryLen] > 0 ? rtp[kRtpQueryLen] : 1;
  for (int32_t r = 0; r < rows; ++r) {
    const int8_t* xr = x + r * n;
    int32_t valid = n;
    if (causal) {
      const int32_t q = (first_row + r) % query_len;
      const int32_t v = q + rtp[kRtpPastLen] + 1;
      valid = v < 0 ? 0 : (v > n ? n : v);
    }
    for (int32_t j = 0; j < valid; ++j) g_z[j] = xdna::softmax::score_logit(xr[j], rq);
    for (int32_t j = valid; j < n; ++j) g_z[j] = xdna::softmax::kExcludedLogit;
    if (mask) {
      const float* mr = mask + r * n;
      for (int32_t j = 0; j < valid; ++j)
        g_z[j] = xdna::softmax::add_mask(g_z[j], xdna::softmax::mask_logit(mr[j]));
    }
    normalize(g_z, n, p + r * n);
  }
}

}  // namespace

extern "C" {

// rows x n int8 scores -> rows x n probabilities (0..127).
void xdna_softmax_i8(const int8_t* __restrict x, int8_t* __restrict p,
                     const int32_t* __restrict rtp, const int32_t* __restrict row_index,
                     int32_t rows, int32_t n) {
  block(x, nullptr, p, rtp, row_index[0], rows, n);
}

// Same with an additive f32 mask block (rows x n, already broadcast by the DMA).
void xdna_softmax_i8_masked(const int8_t* __restrict x, const float* __restrict mask,
                            int8_t* __restrict p, const int32_t* __restrict rtp,
                            const int32_t* __restrict row_index, int32_t rows, int32_t n) {
  block(x, mask, p, rtp, row_index[0], rows, n);
}

}  // extern "C"
