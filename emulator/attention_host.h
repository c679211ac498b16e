// Host (emulator) entry point of the attention kernel; arithmetic in
// kernels/attention/attention.h.
#pragma once
#include <cstdint>

#include "../kernels/common/epilogue.h"

namespace xdna {

struct AttentionArgs {
  const int8_t* q = nullptr;  // [B, Tq, H*Dh]
  const int8_t* k = nullptr;  // [B, Tk, H*Dh], values in [-127, 127]
  const int8_t* v = nullptr;  // [B, Tk, H*Dh], values in [-127, 127]
  int64_t batch = 0, q_len = 0, k_len = 0, heads = 0, head_dim = 0;
  Requant logit_rq{};
  bool causal = false;
  int64_t past_len = 0;
  const float* mask = nullptr;   // broadcast view of [B, H, Tq, Tk]
  int64_t mask_strides[4] = {0, 0, 0, 0};  // element strides (0 where broadcast)
  bool out_float = false;
  Requant out_rq{};        // int8 output: make_requant(v_scale / out_scale)
  float v_scale = 0.0f;    // float output: row multiplier v_scale / W
  int8_t* out_i8 = nullptr;   // [B, Tq, H*Dh]
  float* out_f32 = nullptr;   // [B, Tq, H*Dh]
};

// The whole op in one call: (batch, head, 64-row query tile) tasks over the
// thread pool; scores and probabilities never leave the task's scratch.
void attention_int8(const AttentionArgs& a);

}  // namespace xdna
