// Host loops of the GELU kernel: see gelu_host.h.
#include "gelu_host.h"

#include "../kernels/gelu/gelu.h"
#include "parallel.h"

namespace xdna {

void gelu_apply(const int8_t* x, int8_t* y, std::size_t n, const int8_t* table) {
  parallel_for(n, 1 << 16, [&](std::size_t b, std::size_t e) {
    gelu::apply_table(x + b, y + b, e - b, table);
  });
}

float gelu_dynamic_table(const int8_t* x, std::size_t n, float in_scale, bool tanh_approx,
                         int8_t* table) {
  int qmin = 0, qmax = 0;
  gelu::code_range(x, n, &qmin, &qmax);
  const float out_scale = gelu::dynamic_out_scale(in_scale, qmin, qmax, tanh_approx);
  gelu::build_table(in_scale, out_scale, tanh_approx, table);
  return out_scale;
}

}  // namespace xdna
