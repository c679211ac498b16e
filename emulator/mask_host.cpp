// Broadcast additive masks: see mask_host.h.
#include "mask_host.h"

namespace xdna {

bool mask_broadcast_strides(const std::vector<int64_t>& mask, const std::vector<int64_t>& target,
                            std::vector<int64_t>* strides) {
  if (mask.size() > target.size()) return false;
  std::vector<int64_t> out(target.size(), 0);
  int64_t s = 1;
  for (std::size_t i = 0; i < mask.size(); ++i) {
    const std::size_t m = mask.size() - 1 - i, t = target.size() - 1 - i;
    if (mask[m] != target[t] && mask[m] != 1) return false;
    out[t] = mask[m] == 1 ? 0 : s;
    s *= mask[m];
  }
  strides->swap(out);
  return true;
}

std::vector<int64_t> mask_row_offsets(const std::vector<int64_t>& shape,
                                      const std::vector<int64_t>& strides) {
  std::vector<int64_t> offsets(1, 0);
  for (std::size_t d = 0; d + 1 < shape.size(); ++d) {
    std::vector<int64_t> next;
    next.reserve(offsets.size() * shape[d]);
    for (int64_t o : offsets)
      for (int64_t i = 0; i < shape[d]; ++i) next.push_back(o + i * strides[d]);
    offsets.swap(next);
  }
  return offsets;
}

}  // namespace xdna
