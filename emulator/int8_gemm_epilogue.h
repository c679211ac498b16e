// Applies the matmul epilogue (kernels/matmul/matmul.h, which calls the shared
// kernels/common/epilogue.h) to one row segment of int32 accumulators. Every
// ISA path calls this, so all paths share one definition of the output bytes.
// Internal linkage on purpose: each ISA translation unit gets its own copy
// compiled with its own target flags (no cross-ISA symbol merging).
#pragma once
#include <cstdint>

#include "int8_gemm_packed.h"
#include "matmul/matmul.h"

namespace xdna {
namespace {

// Bytes per output element of an epilogue kind.
inline int epilogue_elem_size(EpilogueKind k) { return k == EpilogueKind::kRequantInt8 ? 1 : 4; }

// Calls fn(dst, n0, cnt, acc) for each contiguous piece of the row segment
// [n0, n0 + cnt) of row m: dst points at the output element of (m, n0) in
// whichever array holds it (the single output, or the split block that owns
// those columns). A 64-column panel may straddle a block boundary, so a
// segment can become two or more pieces; parameters stay indexed by n0.
template <class Fn>
inline void for_each_out_piece(const Epilogue& e, int m, int n0, int cnt, const int32_t* acc,
                               Fn fn) {
  const long esz = epilogue_elem_size(e.kind);
  if (e.nsplit <= 0) {
    fn(static_cast<char*>(e.out) + (static_cast<long>(m) * e.ldo + n0) * esz, n0, cnt, acc);
    return;
  }
  int j = 0;
  while (j + 1 < e.nsplit && e.split_start[j + 1] <= n0) ++j;
  while (cnt > 0) {
    const int lo = e.split_start[j], hi = e.split_start[j + 1];
    const int c = hi - n0 < cnt ? hi - n0 : cnt;
    char* base = static_cast<char*>(e.split_out[j]);
    fn(base + (static_cast<long>(m) * (hi - lo) + (n0 - lo)) * esz, n0, c, acc);
    n0 += c;
    acc += c;
    cnt -= c;
    ++j;
  }
}

// The scalar epilogue of one contiguous piece: dst is the output element of
// column n0 (see for_each_out_piece).
inline void store_epilogue_piece(const Epilogue& e, void* dst, int n0, int cnt,
                                 const int32_t* acc) {
  switch (e.kind) {
    case EpilogueKind::kInt32: {
      int32_t* o = static_cast<int32_t*>(dst);
      for (int i = 0; i < cnt; ++i) o[i] = acc[i];
      break;
    }
    case EpilogueKind::kRequantInt8: {
      int8_t* o = static_cast<int8_t*>(dst);
      const int32_t* bias = e.bias_i32 + n0;
      const int32_t* mult = e.mult + n0;
      const int32_t* shift = e.shift + n0;
      for (int i = 0; i < cnt; ++i) o[i] = matmul::output_int8(acc[i], bias[i], mult[i], shift[i]);
      break;
    }
    case EpilogueKind::kDequantF32: {
      float* o = static_cast<float*>(dst);
      const float* scale = e.scale + n0;
      const float* bias = e.bias_f32 + n0;
      for (int i = 0; i < cnt; ++i) o[i] = matmul::output_f32(acc[i], scale[i], bias[i]);
      break;
    }
  }
}

inline void apply_epilogue_row(const Epilogue& e, int m, int n0, int cnt, const int32_t* acc) {
  for_each_out_piece(e, m, n0, cnt, acc, [&e](void* dst, int p0, int c, const int32_t* a) {
    store_epilogue_piece(e, dst, p0, c, a);
  });
}

}  // namespace
}  // namespace xdna
