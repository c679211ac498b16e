// AIE2 (npu1) entry points of the on-device dynamic scale (../dynamic_scale.h),
// included by the fused designs' core objects (kernels/fused/<design>/*_aie.cc)
// that take dynamic-mode stages. Scalar IEEE fp32 (exact max/fabs, the contract's
// division): the same bits as the host. Not compiled on hosts without MLIR-AIE.
// included once per core object (several shared sources include it)
#ifndef XDNA_DYNAMIC_SCALE_AIE_CC
#define XDNA_DYNAMIC_SCALE_AIE_CC

#include <stdint.h>
#include <string.h>

#include "../dynamic_scale.h"

extern "C" {

// Starts a producer core's partial (before its first tile of the tensor).
void xdna_dynscale_begin(float* __restrict partial) {
  const xdna::dynscale::Partial p = xdna::dynscale::empty();
  memcpy(partial, &p, sizeof p);
}

// Folds one float32 tile of n values into the producer's partial.
void xdna_dynscale_fold(const float* __restrict x, float* __restrict partial, int32_t n) {
  xdna::dynscale::Partial p;
  memcpy(&p, partial, sizeof p);
  xdna::dynscale::fold(&p, x, static_cast<std::size_t>(n));
  memcpy(partial, &p, sizeof p);
}

// The reducer: n partials (n x 4 words, joined on a memory tile) -> params
// {scale, 1/scale, flag, 0}. neg_limit_bits: the stage's neg_limit as float32
// bits (0: none), passed as an int32 so the design hands it over exactly.
void xdna_dynscale_reduce(const float* __restrict partials, float* __restrict params, int32_t n,
                          int32_t neg_limit_bits) {
  float lim;
  memcpy(&lim, &neg_limit_bits, sizeof lim);
  xdna::dynscale::Partial parts[1];
  xdna::dynscale::Partial acc = xdna::dynscale::empty();
  for (int32_t i = 0; i < n; ++i) {
    memcpy(parts, partials + i * xdna::dynscale::kWords, sizeof parts);
    acc = xdna::dynscale::combine(acc, parts[0]);
  }
  const xdna::dynscale::Params out = xdna::dynscale::finish(acc, lim);
  memcpy(params, &out, sizeof out);
}

// A consumer: quantizes n float32 values with the broadcast params (inv_scale);
// a flagged tensor (NaN/inf) is written as zeros, the host raises on the flag.
void xdna_dynscale_quantize(const float* __restrict x, const float* __restrict params,
                            int8_t* __restrict q, int32_t n) {
  if (params[2] != 0.0f) {
    for (int32_t i = 0; i < n; ++i) q[i] = 0;
    return;
  }
  const float inv = params[1];
  for (int32_t i = 0; i < n; ++i) q[i] = xdna::quant::quantize_one(x[i], inv);
}

}  // extern "C"

#endif  // XDNA_DYNAMIC_SCALE_AIE_CC
