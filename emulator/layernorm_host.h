// Host row loop of the LayerNorm kernel (arithmetic: kernels/layernorm/layernorm.h).
// Raw pointers, no Python. Why it exists: the pybind module (bind_layernorm.cpp)
// and the plugin stage (provider/stage_rows.cc) must give the same bytes, so
// the loop around the header's row functions (scratch, int8/float dispatch,
// the NaN rule before int8 output, the dynamic scale) is written once, here.
#pragma once
#include <cstddef>
#include <cstdint>

namespace xdna {

// y[r, :] = layernorm(x[r, :]) in float32 for every row of x [rows, C]: x is
// float32, or int8 (int8_in) standing for x * in_scale. Rows are split over
// the thread pool. finite == nullptr: float32 output, y as computed.
// finite != nullptr (int8 output follows): finite[r] = 0 where a float32 row's
// statistics are not finite (else 1), and NaN outputs become 0 (NaN has no
// int8 value).
void layernorm_rows(const void* x, bool int8_in, float in_scale, float eps, const float* gamma,
                    const float* beta, std::size_t rows, int C, float* y, unsigned char* finite);

// Dynamic int8 output scale of layernorm_rows' y: max |y| over the rows with
// finite[r] != 0, / 127 in fp32 (1.0 when that is zero or unusable).
float layernorm_dynamic_out_scale(const float* y, std::size_t rows, int C,
                                  const unsigned char* finite);

}  // namespace xdna
