// Host emulator of the add kernel (kernels/add/add.h): fp32 and int8-with-rescale.
// b may equal a's shape or a suffix of it (b repeated over a's leading dims).
#include <pybind11/numpy.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../kernels/add/add.h"
#include "add_host.h"
#include "bindings.h"

namespace py = pybind11;

namespace xdna {
namespace {

float checked_scale(double s, const char* name) {
  const float f = static_cast<float>(s);
  if (!(s > 0.0) || !std::isfinite(s) || !(f > 0.0f) || !std::isfinite(f))
    throw py::value_error(std::string(name) + " must be a positive finite float32");
  return f;
}

std::vector<int64_t> shape_of(const py::array& a) {
  return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

// c = a + b (b: a's shape or a suffix of it, repeated), add_host.h's loops.
template <typename T, typename Fn>
py::array_t<T> run(const py::array_t<T, py::array::c_style>& a,
                   const py::array_t<T, py::array::c_style>& b, Fn broadcast) {
  std::size_t period = 0;
  if (!add_broadcast_period(shape_of(a), shape_of(b), &period))
    throw py::value_error("b (leading 1s dropped) must have a's shape or a suffix of it");
  py::array_t<T> c(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
  const std::size_t n = static_cast<std::size_t>(a.size());
  const T* ap = a.data();
  const T* bp = b.data();
  T* cp = c.mutable_data();
  py::gil_scoped_release nogil;
  broadcast(ap, bp, cp, n, period);
  return c;
}

}  // namespace

void bind_add(py::module_& m) {
  m.def("add_f32", [](const py::array_t<float, py::array::c_style>& a,
                      const py::array_t<float, py::array::c_style>& b) {
    return run<float>(a, b, add_f32_broadcast);
  }, py::arg("a"), py::arg("b"), "c = a + b in fp32 (b: a's shape or a suffix of it).");

  m.def("add_requant", [](double a_scale, double b_scale, double out_scale) {
    const add::AddRequant r = add::make_add_requant(checked_scale(a_scale, "a_scale"),
                                                    checked_scale(b_scale, "b_scale"),
                                                    checked_scale(out_scale, "out_scale"));
    return py::make_tuple(r.ma, r.mb, r.shift);
  }, py::arg("a_scale"), py::arg("b_scale"), py::arg("out_scale"),
  "(ma, mb, shift) of the int8 add: the one place they are computed.");

  m.def("add_i8", [](const py::array_t<int8_t, py::array::c_style>& a,
                     const py::array_t<int8_t, py::array::c_style>& b, double a_scale,
                     double b_scale, double out_scale) {
    const add::AddRequant r = add::make_add_requant(checked_scale(a_scale, "a_scale"),
                                                    checked_scale(b_scale, "b_scale"),
                                                    checked_scale(out_scale, "out_scale"));
    return run<int8_t>(a, b, [r](const int8_t* x, const int8_t* y, int8_t* z, std::size_t n,
                                 std::size_t period) { add_i8_broadcast(x, y, z, n, period, r); });
  }, py::arg("a"), py::arg("b"), py::arg("a_scale"), py::arg("b_scale"), py::arg("out_scale"),
  "c = sat127((a*ma + b*mb + 2^(e-1)) >> e): int8 add with rescale.");

  m.def("add_dynamic_out_scale", [](double a_scale, double b_scale) {
    return add::dynamic_out_scale(checked_scale(a_scale, "a_scale"),
                                  checked_scale(b_scale, "b_scale"));
  }, py::arg("a_scale"), py::arg("b_scale"), "Dynamic-mode output scale a_scale + b_scale (fp32).");
}

}  // namespace xdna
