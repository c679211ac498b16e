// Host row loop of the LayerNorm kernel: see layernorm_host.h.
#include "layernorm_host.h"

#include <cmath>
#include <vector>

#include "../kernels/layernorm/layernorm.h"
#include "parallel.h"
#include "quantize/quantize.h"

namespace xdna {

void layernorm_rows(const void* x, bool int8_in, float in_scale, float eps, const float* gamma,
                    const float* beta, std::size_t rows, int C, float* y, unsigned char* finite) {
  parallel_for(rows, 16, [&](std::size_t rb, std::size_t re) {
    std::vector<int32_t> v(C);
    for (std::size_t r = rb; r < re; ++r) {
      float* yr = y + r * C;
      if (int8_in) {
        const int8_t* q = static_cast<const int8_t*>(x) + r * C;
        const layernorm::RowStats st = layernorm::stats_i8(q, C, in_scale, eps, v.data());
        layernorm::normalize_i8in_f32(q, st, gamma, beta, yr, C);
        if (finite) finite[r] = 1;
      } else {
        const float* xr = static_cast<const float*>(x) + r * C;
        const layernorm::RowStats st = layernorm::stats_f32(xr, C, eps, v.data());
        layernorm::normalize_f32(xr, st, gamma, beta, yr, C);
        if (finite) finite[r] = st.finite ? 1 : 0;
      }
      if (finite) {  // int8 output follows: NaN (non-finite row, Inf*0) must quantize to 0
        for (int i = 0; i < C; ++i) yr[i] = yr[i] == yr[i] ? yr[i] : 0.0f;
      }
    }
  });
}

float layernorm_dynamic_out_scale(const float* y, std::size_t rows, int C,
                                  const unsigned char* finite) {
  float amax = 0.0f;
  for (std::size_t r = 0; r < rows; ++r) {
    if (!finite[r]) continue;
    for (int i = 0; i < C; ++i) {
      const float a = std::fabs(y[r * C + i]);
      amax = a > amax ? a : amax;
    }
  }
  return quant::dynamic_scale(amax);  // amax / 127, 1.0 when unusable
}

}  // namespace xdna
