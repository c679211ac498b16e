// matmul: the arithmetic contract of the int8 matmul kernel, in portable C++.
//
// Included by the host emulator (emulator/int8_gemm_*.cpp) and by the AIE2 kernel
// source (aie/matmul_aie.cc), so both compute the same bytes:
//
//   acc[m, n]  = sum_k A[m, k] * W[k, n]                (int8 x int8, exact int32)
//   int8 out:  y[m, n] = requantize(acc + bias_i32[n], {mult[n], shift[n]})
//   f32 out:   y[m, n] = dequantize(acc, scale[n], bias_f32[n])
//
// A: int8 [M, K] row-major, any int8 value. W: int8 [K, N] in [-127, 127]
// (narrow range; required by the AVX2 path's exact pair sums). K <= 65536 so
// |acc| <= 65536 * 128 * 127 < 2^30 and acc + bias_i32 (|bias_i32| <= 2^30)
// cannot overflow int32: the summation order is then irrelevant, and every
// vectorisation (AVX2, AVX-512 VNNI, aie::mmul) yields the same accumulator.
// The per-channel constants are derived on the host (python/xdna_ep/kernel_specs/
// matmul.py): mult/shift = make_requant(in_scale * w_scale[n] / out_scale),
// bias_i32 = round_half_away(bias[n] / (in_scale * w_scale[n])) clamped to
// +-2^30; scale[n] = fp32(in_scale) * fp32(w_scale[n]).
#pragma once
#include <cstdint>

#include "../common/epilogue.h"

namespace xdna {
namespace matmul {

constexpr int kMaxK = 65536;
constexpr int32_t kMaxBias = 1 << 30;

// The int8-output epilogue of one accumulator.
inline int8_t output_int8(int32_t acc, int32_t bias_i32, int32_t mult, int32_t shift) {
  return requantize(acc + bias_i32, Requant{mult, shift});
}

// The float32-output epilogue of one accumulator (two fp32 ops, no FMA).
inline float output_f32(int32_t acc, float scale, float bias) {
  return dequantize(acc, scale, bias);
}

// The exact accumulator of one output (the loop every vectorised path must
// reproduce; int32 addition is associative here because nothing overflows).
inline int32_t dot(const int8_t* a, const int8_t* w, int K, long ldw) {
  int32_t acc = 0;
  for (int k = 0; k < K; ++k)
    acc += static_cast<int32_t>(a[k]) * static_cast<int32_t>(w[static_cast<long>(k) * ldw]);
  return acc;
}

// Reference loop structure: whole [M, K] x [K, N] with the int8 epilogue.
inline void reference_int8(int M, int N, int K, const int8_t* A, const int8_t* W,
                           const int32_t* bias_i32, const int32_t* mult, const int32_t* shift,
                           int8_t* Y) {
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n)
      Y[static_cast<long>(m) * N + n] =
          output_int8(dot(A + static_cast<long>(m) * K, W + n, K, N), bias_i32[n], mult[n],
                      shift[n]);
}

// Reference loop structure with the float32 epilogue.
inline void reference_f32(int M, int N, int K, const int8_t* A, const int8_t* W,
                          const float* scale, const float* bias, float* Y) {
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n)
      Y[static_cast<long>(m) * N + n] =
          output_f32(dot(A + static_cast<long>(m) * K, W + n, K, N), scale[n], bias[n]);
}

}  // namespace matmul
}  // namespace xdna
