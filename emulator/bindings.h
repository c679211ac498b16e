// Each kernel family registers its Python functions from its own bind_*.cpp,
// so kernels can be added without touching one shared file.
#pragma once
#include <pybind11/pybind11.h>

namespace xdna {
void bind_common(pybind11::module_& m);     // cpu paths, threads, requant helpers
void bind_matmul(pybind11::module_& m);     // matmul + weight packing
void bind_quantize(pybind11::module_& m);   // float32 <-> int8 (static / dynamic scale)
void bind_gelu(pybind11::module_& m);
void bind_layernorm(pybind11::module_& m);
void bind_softmax(pybind11::module_& m);
void bind_attention(pybind11::module_& m);
void bind_add(pybind11::module_& m);
void bind_conv1d(pybind11::module_& m);
}  // namespace xdna
