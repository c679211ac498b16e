// AIE2 (npu1) core functions of the GELU kernel. Compiled with Peano
// (clang++ --target=aie2-none-unknown-elf) by kernels/build_xclbins.py.
//
// The arithmetic is gelu.h's, called directly, so the core produces the same
// bytes as the host emulator: y = table[x + 128]. AIE2 has no 256-entry
// vector gather, so the lookup is a scalar loop the compiler software-
// pipelines (one load + one store per element). The table lives in the core's
// local memory (256 bytes), delivered once per launch by its own ObjectFifo.
// included once per core object (several shared sources include it)
#ifndef XDNA_GELU_AIE_CC
#define XDNA_GELU_AIE_CC

#include <cstdint>

#include "../gelu.h"

extern "C" {

// Applies the table to n int8 elements (n = the design's tile size).
void xdna_gelu_i8(const int8_t* __restrict x, int8_t* __restrict y,
                  const int8_t* __restrict table, int32_t n) {
  xdna::gelu::apply_table(x, y, static_cast<std::size_t>(n), table);
}

// Dynamic mode, first pass (kernel_version 2): folds one tile's smallest and
// largest code into range[0..1] (initialise range to {127, -128} before the first
// tile). The output scale depends on the whole tensor's code range, so the design
// streams the input twice: this reduction, then xdna_gelu_build_table + apply.
void xdna_gelu_code_range(const int8_t* __restrict x, int32_t n, int32_t* __restrict range) {
  int lo, hi;
  xdna::gelu::code_range(x, static_cast<std::size_t>(n), &lo, &hi);
  range[0] = lo < range[0] ? lo : range[0];
  range[1] = hi > range[1] ? hi : range[1];
}

// Dynamic mode: builds the table on the core from the run-time input scale
// (scale_in[0]) and the input's code range (range[0..1], from
// xdna_gelu_code_range) and writes the output scale (scale_out[0]); same
// double-precision formula as the host (gelu.h), evaluated with the toolchain's libm.
void xdna_gelu_build_table(const float* __restrict scale_in, const int32_t* __restrict range,
                           float* __restrict scale_out, int8_t* __restrict table,
                           int32_t tanh_approx) {
  const bool t = tanh_approx != 0;
  const float so = xdna::gelu::dynamic_out_scale(scale_in[0], range[0], range[1], t);
  xdna::gelu::build_table(scale_in[0], so, t, table);
  scale_out[0] = so;
}

}  // extern "C"

#endif  // XDNA_GELU_AIE_CC
