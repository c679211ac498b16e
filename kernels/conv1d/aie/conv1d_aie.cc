// AIE2 (npu1) core functions of the conv1d kernel. One call handles one tile
// of `nt` output positions for one block of output channels:
//   window (fp32 [Cin, win], already zero-padded) -> quantize -> im2col ->
//   exact int32 dot products (matmul.h) -> fp32 epilogue (shared epilogue).
// No arithmetic beyond conv1d.h, matmul.h and kernels/common/epilogue.h.
#include <cstdint>

#include "../../common/epilogue.h"
#include "../../matmul/matmul.h"
#include "../conv1d.h"

namespace {
// Local scratch sized for the design's tiles (nt = 8 positions): Whisper conv2
// window 384 x (7*2 + 3) int8 and im2col 8 x 1152 int8.
int8_t g_qwin[384 * 17];
int8_t g_col[8 * 1152];
}  // namespace

extern "C" {

// Quantizes the window and builds the im2col rows of the tile:
// col[t, ci*Kw + k] = q[ci, t*stride + k]  (the window starts at position t0*stride
// of the zero-padded input, so no bounds checks are needed here).
// scal = {in_scale, inv_in_scale} (static, from the WEIGHTS block).
void xdna_conv1d_im2col(const float* __restrict win, const float* __restrict scal,
                        int32_t Cin, int32_t win_len, int32_t Kw, int32_t stride, int32_t nt) {
  const int32_t n = Cin * win_len;
  for (int32_t i = 0; i < n; ++i) g_qwin[i] = xdna::quantize(win[i], scal[1]);
  const int32_t K = Cin * Kw;
  for (int32_t t = 0; t < nt; ++t)
    xdna::conv1d::im2col_row(g_qwin, Cin, win_len, Kw, stride, /*pad=*/0, t, g_col + t * K);
}

// y[co, t] (co in [co0, co0 + nco), t in the tile) into a [nco, nt] block.
// w: the block's weight rows [nco, K] (weight[Cout, Cin*Kw] row-major);
// w_scale, bias: full [Cout] arrays.
void xdna_conv1d_block(const int8_t* __restrict w, const float* __restrict w_scale,
                       const float* __restrict bias, const float* __restrict scal,
                       float* __restrict y, int32_t K, int32_t co0, int32_t nco, int32_t nt) {
  const float in_scale = scal[0];
  for (int32_t j = 0; j < nco; ++j) {
    const float s = xdna::conv1d::out_scale(in_scale, w_scale[co0 + j]);
    const float b = bias[co0 + j];
    for (int32_t t = 0; t < nt; ++t) {
      const int32_t acc = xdna::matmul::dot(g_col + t * K, w + j * K, K, 1);
      y[j * nt + t] = xdna::dequantize(acc, s, b);
    }
  }
}

}  // extern "C"
