// AIE2 (npu1) entry points of the on-array dynamic GELU table, shared by the fused
// designs whose dynamic form runs quantize(dynamic, neg_limit 4) -> gelu(dynamic)
// (conv_frontend, ffn_block, ffn_ln_matmul). The dynamic gelu's table and output
// scale depend on the code range [qmin, qmax] of its WHOLE quantized input
// (gelu.h dynamic_out_scale), so, as for a dynamic scale (dynamic_scale.h):
// producer cores quantize their chunks with the input's broadcast params and fold
// the codes into a 4-int32 range {lo, hi, 0, 0}; the ranges join on a memory
// tile; one reducer core combines them and builds {table[256], s_out} (272 bytes),
// broadcast to the cores that apply it. Quantize is the dynamic quantize's own
// code (xdna_dynscale_quantize), so the range is the one the host's gelu sees.
// included once per core object (several shared sources include it)
#ifndef XDNA_GELU_TABLE_AIE_CC
#define XDNA_GELU_TABLE_AIE_CC

#include <stdint.h>
#include <string.h>

#include "../../gelu/aie/gelu_aie.cc"
#include "dynamic_scale_aie.cc"

namespace {
alignas(32) int8_t g_gelu_codes[1024];   // one chunk's int8 codes (n <= 1024)
}  // namespace

namespace xdna {
namespace gelu_table {
constexpr int32_t kScaleAt = 256;   // the reducer's object: table[256], then s_out (fp32)
constexpr int32_t kBytes = 256 + 16;
}  // namespace gelu_table
}  // namespace xdna

extern "C" {

// Starts a producer's code range: {lo, hi, 0, 0} = {127, -128} (the empty range).
void xdna_gelu_codes_begin(int32_t* __restrict range) {
  range[0] = 127;
  range[1] = -128;
  range[2] = range[3] = 0;
}

// Quantizes a chunk of n <= 1024 values with the input's params (the dynamic
// quantize stage) and folds its codes into range (xdna_gelu_code_range).
void xdna_gelu_codes_fold(const float* __restrict x, const float* __restrict params,
                          int32_t* __restrict range, int32_t n) {
  xdna_dynscale_quantize(x, params, g_gelu_codes, n);
  xdna_gelu_code_range(g_gelu_codes, n, range);
}

// The reducer: the code ranges of `parts` producers ([parts][4] int32) and the
// input's params -> gelu = {table[256], s_out} (the host gelu_dynamic's formula).
void xdna_gelu_table_reduce(const int32_t* __restrict ranges, const float* __restrict params,
                            int8_t* __restrict gelu, int32_t parts, int32_t tanh_approx) {
  int32_t range[2] = {127, -128};
  for (int32_t i = 0; i < parts; ++i) {
    range[0] = ranges[4 * i] < range[0] ? ranges[4 * i] : range[0];
    range[1] = ranges[4 * i + 1] > range[1] ? ranges[4 * i + 1] : range[1];
  }
  float so;
  xdna_gelu_build_table(params, range, &so, gelu, tanh_approx);
  memcpy(gelu + xdna::gelu_table::kScaleAt, &so, sizeof so);
}

// A consumer: quantizes a chunk of n <= 1024 values with the input's params and
// applies the reducer's table: the dynamic gelu stage's int8 output (scale s_out).
void xdna_gelu_table_apply(const float* __restrict x, const float* __restrict params,
                           const int8_t* __restrict gelu, int8_t* __restrict y, int32_t n) {
  xdna_dynscale_quantize(x, params, g_gelu_codes, n);
  xdna_gelu_i8(g_gelu_codes, y, gelu, n);
}

}  // extern "C"

#endif  // XDNA_GELU_TABLE_AIE_CC
