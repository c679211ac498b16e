// Attention-side shims of attn_block's dynamic form (design.py build_dynamic;
// kernels/attention/design.py fused_dynamic_stage). Included by attn_block_aie.cc
// after attention_aie.cc and common/aie/dynamic_scale_aie.cc (it uses both); the
// tests compile exactly those three on the host (scalar aie_api stand-in).
//
// In the dynamic form q, k and v are float32 tensors whose scales the fused design
// reduces on the array before the attention phase. Each attention core keeps the
// reducer's params of q, k and v (attn_dyn_keep), quantizes every float32 chunk the
// DMA brings into its int8 q / k / v block with them (the quantize contract's code,
// xdna_dynscale_quantize), and derives the attention words that depend on them the
// way the host does for a one-stage dynamic attention (kernel_specs/attention.py
// prepare_call, provider/stage_rows.cc): logit requant = make_requant(
// double(q_s) * double(k_s) * softmax_scale * 256 / ln 2), all in double, and the
// float32 output's v_scale bits.
#include <stdint.h>
#include <string.h>

namespace {
constexpr int32_t kAttnChunk = 8 * 64;  // floats per chunk: 8 rows of one head (CHUNK)
constexpr int32_t kScaleWords = 4;      // one reducer params object
// PARAMS words of the dynamic form beyond enum Param: softmax_scale's float64 bits
constexpr int kSoftmaxScaleLo = 10;
constexpr int kSoftmaxScaleHi = 11;
// 256 / ln 2 in double, as kernel_specs/softmax.py LOGIT_UNITS_PER_NAT (the literal is
// ln 2 to more digits than a double holds: it rounds to the same double as log(2.0))
constexpr double kLogitUnitsPerNat = 256.0 / 0.693147180559945309417232121458176568;
constexpr double kMaxLogitUnits = 536870912.0;  // 2^29: the host refuses larger
}  // namespace

extern "C" {

// Keeps the params {scale, 1/scale, flag, 0} of reduction `slot` (0 q, 1 k, 2 v) in
// keep[4 slot ..]: the broadcast object is released right after, so the reducer can
// go on with the next tensor.
void attn_dyn_keep(const float* __restrict params, float* __restrict keep, int32_t slot) {
  memcpy(keep + kScaleWords * slot, params, kScaleWords * sizeof(float));
}

// The attention words of this launch: PARAMS' words (causal, past_len, Tk, groups
// per head, softmax_scale's bits) with the scale-dependent ones made from the
// reduced q, k, v scales: logit multiplier / shift, float output, v_scale's bits.
// A logit scale of 2^29 units or more (the host raises for it) gives multiplier 0.
void attn_dyn_words(const int32_t* __restrict host, const float* __restrict keep,
                    int32_t* __restrict words) {
  for (int i = 0; i < 16; ++i) words[i] = host[i];
  const uint64_t bits = static_cast<uint64_t>(static_cast<uint32_t>(host[kSoftmaxScaleLo])) |
                        (static_cast<uint64_t>(static_cast<uint32_t>(host[kSoftmaxScaleHi]))
                         << 32);
  double softmax_scale;
  memcpy(&softmax_scale, &bits, sizeof softmax_scale);
  const double real = static_cast<double>(keep[0]) * static_cast<double>(keep[kScaleWords]) *
                      softmax_scale;
  const double units = real * kLogitUnitsPerNat;
  const xdna::Requant rq =
      units < kMaxLogitUnits ? xdna::make_requant(units) : xdna::Requant{0, 31};
  words[kLogitMult] = rq.multiplier;
  words[kLogitShift] = rq.shift;
  words[kOutFloat] = 1;
  int32_t v_bits;
  memcpy(&v_bits, keep + 2 * kScaleWords, sizeof v_bits);
  words[kVScaleBits] = v_bits;
}

// Chunk `index` (8 query rows) of this core's q block, quantized with q's params.
void attn_dyn_quantize_q(const float* __restrict x, const float* __restrict keep,
                         int8_t* __restrict q, int32_t index) {
  xdna_dynscale_quantize(x, keep, q + index * kAttnChunk, kAttnChunk);
}

// Chunk `index` (8 keys) of a 64-key block of k (which = 1) or v (which = 2).
void attn_dyn_quantize_kv(const float* __restrict x, const float* __restrict keep,
                          int8_t* __restrict block, int32_t which, int32_t index) {
  xdna_dynscale_quantize(x, keep + kScaleWords * which, block + index * kAttnChunk,
                         kAttnChunk);
}

}  // extern "C"
