// Elementwise add contract (residual connections).
//
// Included by the host emulator (emulator/add*.cpp) and by the AIE2 kernel
// (kernels/add/aie/add_aie.cc).
//
// fp32:  c = a + b                       (one IEEE-754 fp32 add, round to nearest even)
// int8:  c = sat127( (a*ma + b*mb + 2^(e-1)) >> e )   (int64 arithmetic, arithmetic
//        shift: round half toward +inf), with (ma, mb, e) from make_add_requant():
//        the larger of a_scale/out_scale, b_scale/out_scale gets the shared
//        epilogue's (m, e) (m in [2^30, 2^31)); the other multiplier is
//        llround(ratio * 2^e) with the same e.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "../common/epilogue.h"

namespace xdna {
namespace add {

struct AddRequant {
  int32_t ma;
  int32_t mb;
  int32_t shift;  // 1..62
};

// Computed once (host, double precision); kernels see only integers.
inline AddRequant make_add_requant(float a_scale, float b_scale, float out_scale) {
  const double ra = static_cast<double>(a_scale) / static_cast<double>(out_scale);
  const double rb = static_cast<double>(b_scale) / static_cast<double>(out_scale);
  const bool a_big = ra >= rb;
  const Requant big = make_requant(a_big ? ra : rb);
  const double small_ratio = a_big ? rb : ra;
  double ms = std::ldexp(small_ratio, big.shift);
  if (ms > 2147483647.0) ms = 2147483647.0;
  const int32_t small = static_cast<int32_t>(std::llround(ms));
  AddRequant r;
  r.shift = big.shift;
  r.ma = a_big ? big.multiplier : small;
  r.mb = a_big ? small : big.multiplier;
  return r;
}

// Dynamic mode: the output scale can hold any sum without saturation.
inline float dynamic_out_scale(float a_scale, float b_scale) { return a_scale + b_scale; }

inline int8_t add_i8(int8_t a, int8_t b, AddRequant r) {
  const int64_t acc = static_cast<int64_t>(a) * r.ma + static_cast<int64_t>(b) * r.mb +
                      (int64_t{1} << (r.shift - 1));
  return saturate_int8(acc >> r.shift);
}

inline void add_f32_row(const float* a, const float* b, float* c, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) c[i] = a[i] + b[i];
}

inline void add_i8_row(const int8_t* a, const int8_t* b, int8_t* c, std::size_t n,
                       AddRequant r) {
  for (std::size_t i = 0; i < n; ++i) c[i] = add_i8(a[i], b[i], r);
}

}  // namespace add
}  // namespace xdna
