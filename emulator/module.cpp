// xdna_ep._emulator: the host build of the NPU kernels (see kernels/).
#include "bindings.h"

PYBIND11_MODULE(_emulator, m) {
  m.doc() = "Host emulator of the xdna-ep NPU kernels: same arithmetic, same bytes.";
  xdna::bind_common(m);
  xdna::bind_matmul(m);
  xdna::bind_quantize(m);
  xdna::bind_gelu(m);
  xdna::bind_layernorm(m);
  xdna::bind_softmax(m);
  xdna::bind_attention(m);
  xdna::bind_add(m);
  xdna::bind_conv1d(m);
}
