// Argument checks shared by the kernel bindings: user arrays are validated
// here (dtype, contiguity, shape, values) so that bad input becomes a Python
// TypeError/ValueError naming the argument, never a crash or silent cast.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <string>

namespace xdna {
namespace checks {

namespace py = pybind11;

template <class T>
inline const char* dtype_name();
template <>
inline const char* dtype_name<int8_t>() { return "int8"; }
template <>
inline const char* dtype_name<int32_t>() { return "int32"; }
template <>
inline const char* dtype_name<float>() { return "float32"; }

// Returns `obj` as a C-contiguous array of exactly dtype T (no conversion).
template <class T>
inline py::array_t<T> array_of(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy array of " + dtype_name<T>());
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<T>()))
    throw py::type_error(std::string(name) + " must have dtype " + dtype_name<T>() + ", got " +
                         py::str(a.dtype()).cast<std::string>());
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + " must be C-contiguous");
  return py::reinterpret_borrow<py::array_t<T>>(a);
}

inline void require_ndim(const py::array& a, int ndim, const char* name) {
  if (a.ndim() != ndim)
    throw py::value_error(std::string(name) + " must have " + std::to_string(ndim) +
                          " dimensions, got " + std::to_string(a.ndim()));
}

inline void require_len(const py::array& a, long n, const char* name) {
  if (a.ndim() != 1 || a.shape(0) != n)
    throw py::value_error(std::string(name) + " must have shape (" + std::to_string(n) + ",)");
}

inline void require_nonempty(const py::array& a, const char* name) {
  for (py::ssize_t i = 0; i < a.ndim(); ++i)
    if (a.shape(i) == 0) throw py::value_error(std::string(name) + " has a zero-size dimension");
}

// A quantization scale: finite, > 0, and with a finite fp32 reciprocal.
inline float require_scale(double s, const char* name) {
  const float f = static_cast<float>(s);
  if (!(f > 0.0f) || !std::isfinite(f) || !std::isfinite(1.0f / f))
    throw py::value_error(std::string(name) + " must be a finite float32 > 0 with a finite "
                          "reciprocal, got " + std::to_string(s));
  return f;
}

}  // namespace checks
}  // namespace xdna
