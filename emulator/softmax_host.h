// Host (emulator) entry points of the softmax kernel; arithmetic in
// kernels/softmax/softmax.h.
#pragma once
#include <cstdint>

#include "../kernels/common/epilogue.h"

namespace xdna {

// Row-wise softmax over int8 scores x[rows, n] -> p int8 (0..127, scale 1/127).
struct SoftmaxArgs {
  const int8_t* x = nullptr;
  int8_t* out = nullptr;
  int64_t rows = 0;
  int64_t n = 0;
  Requant logit_rq{};  // make_requant(in_scale * scale * 256 * log2(e))
  bool causal = false;
  int64_t query_len = 1;  // causal: query index of row r is r % query_len
  int64_t past_len = 0;   // causal: query i sees keys j <= i + past_len
  const float* mask = nullptr;           // optional additive mask
  const int64_t* mask_row_offset = nullptr;  // element offset of row r's mask
  int64_t mask_col_stride = 0;           // element stride along n (0 or 1)
};

void softmax_int8(const SoftmaxArgs& a);

}  // namespace xdna
