// Host kernels of the quantize/dequantize stages (contract:
// kernels/quantize/quantize.h). Raw pointers, no Python: bind_quantize.cpp
// validates arrays and releases the GIL around these calls.
#pragma once
#include <cstddef>
#include <cstdint>

namespace xdna {

// q = sat127(rint(x / scale)); returns false (and writes 0) where x is NaN.
bool quantize_static(const float* x, std::size_t n, float scale, int8_t* q);
// max |x| over the array; *finite = false when any element is NaN or inf.
float max_abs(const float* x, std::size_t n, bool* finite);
// max x over the array (n > 0; call after max_abs found it finite).
float max_value(const float* x, std::size_t n);
// x = float(q) * scale
void dequantize(const int8_t* q, std::size_t n, float scale, float* x);

// Dynamic quantize's scale of x (n > 0): max|x| / 127 as quant::dynamic_scale,
// where neg_limit > 0 (a GELU input) caps max|x| at max(max x, neg_limit).
// *finite = false (scale unspecified) when x holds NaN or inf. One function so
// that the pybind module (bind_quantize.cpp) and the plugin's quantize stage
// (provider/stage_quantize.cc) choose the scale the same way.
float dynamic_quantize_scale(const float* x, std::size_t n, float neg_limit, bool* finite);

// AVX2 chunks (emulator/quantize_avx2.cpp), single-threaded, same bytes.
bool quantize_chunk_avx2(const float* x, std::size_t n, float inv_scale, int8_t* q);
float max_abs_chunk_avx2(const float* x, std::size_t n, bool* finite);

}  // namespace xdna
