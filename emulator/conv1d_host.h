// Host engine of the conv1d kernel (kernels/conv1d/conv1d.h): quantize ->
// im2col -> exact int8 GEMM (the matmul kernel's packed engine) -> fp32
// epilogue in the [Cout, Tout] layout. Raw pointers, no Python: shared by the
// pybind module (bind_conv1d.cpp) and the plugin library (provider/).
#pragma once
#include <cstddef>
#include <cstdint>

namespace xdna {

struct Conv {
  int B, Cin, T, Cout, Kw, stride, pad, Tout;
};

// max|x| / 127 in fp32, 1.0 when x is all zero (same rule as dynamic quantize).
float conv1d_dynamic_in_scale(const float* x, std::size_t n);
// y [B, Cout, Tout] from x [B, Cin, T]; w int8 [Cout, Cin*Kw]. Returns false
// (output unspecified) when x holds NaN.
bool conv1d_run(const Conv& c, const float* x, float in_scale, const int8_t* w,
                const float* w_scale, const float* bias, float* y);

}  // namespace xdna
