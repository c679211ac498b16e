// Host loops of the add kernel (arithmetic: kernels/add/add.h). Raw pointers,
// no Python. Why it exists: the pybind module (bind_add.cpp) and the plugin
// stage (provider/stage_elementwise.cc) both repeat b over a's leading dims
// and split the work over the thread pool; that walk is written once, here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../kernels/add/add.h"

namespace xdna {

// b broadcasts to a when b's shape, its leading 1s dropped (kernel_version 3),
// is a's shape or a suffix of it, and b's rank is at most a's; then
// *period = the number of elements of b (the repeat period along flat a).
// Returns false (period untouched) otherwise.
bool add_broadcast_period(const std::vector<int64_t>& a_shape,
                          const std::vector<int64_t>& b_shape, std::size_t* period);

// c[i] = a[i] + b[i % period] for i in [0, n) (fp32, add::add_f32_row), over
// the thread pool in runs that line up with one period of b.
void add_f32_broadcast(const float* a, const float* b, float* c, std::size_t n,
                       std::size_t period);

// The same with the int8 rescaling add (add::add_i8_row).
void add_i8_broadcast(const int8_t* a, const int8_t* b, int8_t* c, std::size_t n,
                      std::size_t period, add::AddRequant r);

}  // namespace xdna
