// 1-D convolution contract (Whisper's audio front end), as im2col + int8 GEMM.
//
// Included by the host emulator (emulator/conv1d.cpp) and by the AIE2 im2col/epilogue
// kernel (kernels/conv1d/aie/conv1d_aie.cc); the GEMM itself is the matmul
// kernel's int8 x int8 -> int32 core (exact, order independent).
//
//   x   fp32 [B, Cin, T] -> q = quantize(x, 1/in_scale)        (shared epilogue)
//   col int8 [Tout, Cin*Kw]: col[t, ci*Kw + k] = q[b, ci, t*stride + k - pad],
//       0 where the index falls outside [0, T)   (ONNX Conv zero padding)
//   acc int32 [Tout, Cout] = col x W^T, W int8 [Cout, Cin*Kw] (row-major view of
//       the ONNX weight [Cout, Cin, Kw]), values in [-127, 127]
//   y[b, co, t] = dequantize(acc[t, co], in_scale * w_scale[co] (one fp32 multiply),
//                            bias[co])                          (shared epilogue)
//   Tout = floor((T + 2*pad - Kw) / stride) + 1
#pragma once
#include <cstdint>

#include "../common/epilogue.h"

namespace xdna {
namespace conv1d {

inline int out_length(int T, int Kw, int stride, int pad) {
  const int span = T + 2 * pad - Kw;
  return span < 0 ? 0 : span / stride + 1;
}

// One im2col row for output position t of one batch item. q: [Cin, T] int8.
inline void im2col_row(const int8_t* q, int Cin, int T, int Kw, int stride, int pad, int t,
                       int8_t* row) {
  const int start = t * stride - pad;
  for (int ci = 0; ci < Cin; ++ci) {
    const int8_t* src = q + static_cast<long>(ci) * T;
    int8_t* dst = row + ci * Kw;
    for (int k = 0; k < Kw; ++k) {
      const int p = start + k;
      dst[k] = (p >= 0 && p < T) ? src[p] : int8_t{0};
    }
  }
}

// Combined dequantization scale of output channel co.
inline float out_scale(float in_scale, float w_scale) { return in_scale * w_scale; }

}  // namespace conv1d
}  // namespace xdna
