// Host loops of the GELU kernel (arithmetic: kernels/gelu/gelu.h). Raw
// pointers, no Python. Why it exists: the pybind module (bind_gelu.cpp) and
// the plugin stage (provider/stage_elementwise.cc) both split the table
// lookup over the thread pool and build the dynamic-mode table the same way;
// both steps are written once, here.
#pragma once
#include <cstddef>
#include <cstdint>

namespace xdna {

// y[i] = table[x[i] + 128] for i in [0, n), over the thread pool.
void gelu_apply(const int8_t* x, int8_t* y, std::size_t n, const int8_t* table);

// Dynamic mode (kernel_version 3): the table for x (n > 0) at in_scale, its
// output scale covering the codes present in x. Writes table[256], returns
// the output scale.
float gelu_dynamic_table(const int8_t* x, std::size_t n, float in_scale, bool tanh_approx,
                         int8_t* table);

}  // namespace xdna
