// int8 weights packed once for the host matmul (layout: int8_gemm_packed.h),
// owning their bytes. Why it exists: the pybind module's MatmulWeights
// (bind_matmul.cpp) and the plugin's matmul stage (provider/stage_matmul.cc)
// check, size, pack and view the weights the same way; written once, here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "int8_gemm_packed.h"

namespace xdna {

struct PackedWeights {
  int K = 0, N = 0;
  std::vector<int8_t> data;     // Np * Kp bytes
  std::vector<int32_t> colsum;  // Np values

  // The GEMM's view: K and N padded to the layout's Kp, Np.
  PackedB view() const;
};

// Packs W [K, N] (row stride ldw; values in [-127, 127], see has_int8_min).
void pack_weights(int K, int N, const int8_t* w, long ldw, PackedWeights* out);

// Whether any of the n bytes is -128 (outside the narrow int8 range the GEMM
// requires of B). A branch-free OR reduction (the compiler vectorises it),
// unlike an early-exit loop: this check would otherwise cost more than a
// few-row GEMM.
bool has_int8_min(const int8_t* p, std::size_t n);

}  // namespace xdna
