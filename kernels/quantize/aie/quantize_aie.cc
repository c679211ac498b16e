// AIE2 (npu1) kernel source of the quantize / dequantize tiles.
//
// Built by kernels/build_xclbins.py with the MLIR-AIE toolchain and linked
// into the core program of kernels/quantize/design.py; not compiled on hosts
// without it. Bit-exactness with the host emulator (emulator/quantize.cpp) comes
// from calling the same contract functions (../quantize.h, which uses the
// shared ../../common/epilogue.h): scalar IEEE fp32 arithmetic (software
// floating point on AIE2 cores, exact, round-to-nearest-even). A vectorised
// variant must reproduce rint(x * inv_scale) exactly (aie::to_fixed with
// round-half-even and saturation set) before it may replace these loops.
#include <stdint.h>

#include <aie_api/aie.hpp>

#include "../quantize.h"
// the on-device dynamic scale (design.py build_dynamic): begin / fold / reduce / quantize
#include "../../common/aie/dynamic_scale_aie.cc"

namespace {
constexpr unsigned kTile = 1024;  // elements per object, must match design.py
}

extern "C" {

// params[0] = the per-tensor scale (static, or computed by the host runtime
// as max|x|/127 for dynamic mode).
void quantize_f32_i8(const float* __restrict x, const float* __restrict params,
                     int8_t* __restrict q) {
  const float inv = xdna::quant::inverse_scale(params[0]);
  for (unsigned i = 0; i < kTile; ++i) q[i] = xdna::quant::quantize_one(x[i], inv);
}

void dequantize_i8_f32(const int8_t* __restrict q, const float* __restrict params,
                       float* __restrict x) {
  const float scale = params[0];
  for (unsigned i = 0; i < kTile; ++i) x[i] = xdna::quant::dequantize_one(q[i], scale);
}

}  // extern "C"
