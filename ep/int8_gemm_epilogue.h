// Applies the matmul epilogue (kernels/matmul/matmul.h, which calls the shared
// kernels/common/epilogue.h) to one row segment of int32 accumulators. Every
// ISA path calls this, so all paths share one definition of the output bytes.
// Internal linkage on purpose: each ISA translation unit gets its own copy
// compiled with its own target flags (no cross-ISA symbol merging).
#pragma once
#include <cstdint>

#include "int8_gemm_packed.h"
#include "matmul/matmul.h"

namespace xdna {
namespace {

inline void apply_epilogue_row(const Epilogue& e, int m, int n0, int cnt, const int32_t* acc) {
  const long off = static_cast<long>(m) * e.ldo + n0;
  switch (e.kind) {
    case EpilogueKind::kInt32: {
      int32_t* o = static_cast<int32_t*>(e.out) + off;
      for (int i = 0; i < cnt; ++i) o[i] = acc[i];
      break;
    }
    case EpilogueKind::kRequantInt8: {
      int8_t* o = static_cast<int8_t*>(e.out) + off;
      const int32_t* bias = e.bias_i32 + n0;
      const int32_t* mult = e.mult + n0;
      const int32_t* shift = e.shift + n0;
      for (int i = 0; i < cnt; ++i) o[i] = matmul::output_int8(acc[i], bias[i], mult[i], shift[i]);
      break;
    }
    case EpilogueKind::kDequantF32: {
      float* o = static_cast<float*>(e.out) + off;
      const float* scale = e.scale + n0;
      const float* bias = e.bias_f32 + n0;
      for (int i = 0; i < cnt; ++i) o[i] = matmul::output_f32(acc[i], scale[i], bias[i]);
      break;
    }
  }
}

}  // namespace
}  // namespace xdna
