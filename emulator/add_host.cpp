// Host loops of the add kernel: see add_host.h.
#include "add_host.h"

#include <algorithm>

#include "parallel.h"

namespace xdna {
namespace {

template <typename T, typename Fn>
void broadcast_rows(const T* a, const T* b, T* c, std::size_t n, std::size_t period, Fn row_fn) {
  if (n == 0) return;
  parallel_for(n, 1 << 15, [&](std::size_t beg, std::size_t end) {
    std::size_t i = beg;
    while (i < end) {  // walk a in runs that line up with one period of b
      const std::size_t off = i % period;
      const std::size_t len = std::min(end - i, period - off);
      row_fn(a + i, b + off, c + i, len);
      i += len;
    }
  });
}

}  // namespace

bool add_broadcast_period(const std::vector<int64_t>& a_shape,
                          const std::vector<int64_t>& b_shape, std::size_t* period) {
  if (b_shape.size() > a_shape.size()) return false;
  // kernel_version 3: b's leading 1s are dropped first ([1, T, D] acts as [T, D])
  std::size_t lead = 0;
  while (lead < b_shape.size() && b_shape[lead] == 1) ++lead;
  const std::size_t nb = b_shape.size() - lead;
  for (std::size_t i = 0; i < nb; ++i)
    if (b_shape[b_shape.size() - 1 - i] != a_shape[a_shape.size() - 1 - i]) return false;
  int64_t n = 1;
  for (int64_t d : b_shape) n *= d;
  *period = static_cast<std::size_t>(n);
  return true;
}

void add_f32_broadcast(const float* a, const float* b, float* c, std::size_t n,
                       std::size_t period) {
  broadcast_rows(a, b, c, n, period,
                 [](const float* x, const float* y, float* z, std::size_t len) {
                   add::add_f32_row(x, y, z, len);
                 });
}

void add_i8_broadcast(const int8_t* a, const int8_t* b, int8_t* c, std::size_t n,
                      std::size_t period, add::AddRequant r) {
  broadcast_rows(a, b, c, n, period,
                 [r](const int8_t* x, const int8_t* y, int8_t* z, std::size_t len) {
                   add::add_i8_row(x, y, z, len, r);
                 });
}

}  // namespace xdna
