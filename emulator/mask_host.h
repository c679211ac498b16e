// Broadcast additive masks of the softmax and attention kernels. Raw shapes,
// no Python. Why it exists: the plugin stages (provider/stage_rows.cc) and the
// pybind module (bind_softmax.cpp, for kernel_specs/softmax.py) turn a mask
// shape into the element strides / per-row offsets the kernels read; that
// arithmetic is written once, here.
#pragma once
#include <cstdint>
#include <vector>

namespace xdna {

// Element strides of a C-contiguous mask of shape `mask` broadcast
// (right-aligned, numpy rules) to `target`: one per target dim, 0 where the
// mask is repeated (a missing or extent-1 mask dim). Returns false when the
// mask has more dims than target or a dim neither equal to target's nor 1.
bool mask_broadcast_strides(const std::vector<int64_t>& mask, const std::vector<int64_t>& target,
                            std::vector<int64_t>* strides);

// Element offset of every row's mask, rows in row-major order over all dims
// of `shape` but the last (SoftmaxArgs::mask_row_offset), from the strides of
// mask_broadcast_strides; the column stride is strides.back().
std::vector<int64_t> mask_row_offsets(const std::vector<int64_t>& shape,
                                      const std::vector<int64_t>& strides);

}  // namespace xdna
