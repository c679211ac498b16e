// Host emulator of the add kernel (kernels/add/add.h): fp32 and int8-with-rescale.
// b may equal a's shape or a suffix of it (b repeated over a's leading dims).
#include <pybind11/numpy.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "../kernels/add/add.h"
#include "bindings.h"
#include "parallel.h"

namespace py = pybind11;

namespace xdna {
namespace {

float checked_scale(double s, const char* name) {
  const float f = static_cast<float>(s);
  if (!(s > 0.0) || !std::isfinite(s) || !(f > 0.0f) || !std::isfinite(f))
    throw py::value_error(std::string(name) + " must be a positive finite float32");
  return f;
}

// Number of elements of b (the repeat period) after checking b is a suffix of a.
std::size_t broadcast_period(const py::array& a, const py::array& b) {
  if (b.ndim() > a.ndim()) throw py::value_error("b must have a's shape or a suffix of it");
  for (py::ssize_t i = 0; i < b.ndim(); ++i)
    if (b.shape(b.ndim() - 1 - i) != a.shape(a.ndim() - 1 - i))
      throw py::value_error("b must have a's shape or a suffix of it");
  return static_cast<std::size_t>(b.size());
}

template <typename T, typename Fn>
py::array_t<T> run(const py::array_t<T, py::array::c_style>& a,
                   const py::array_t<T, py::array::c_style>& b, Fn row_fn) {
  const std::size_t period = broadcast_period(a, b);
  py::array_t<T> c(std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim()));
  const std::size_t n = static_cast<std::size_t>(a.size());
  if (n == 0) return c;
  const T* ap = a.data();
  const T* bp = b.data();
  T* cp = c.mutable_data();
  py::gil_scoped_release nogil;
  parallel_for(n, 1 << 15, [&](std::size_t beg, std::size_t end) {
    std::size_t i = beg;
    while (i < end) {  // walk a in runs that line up with one period of b
      const std::size_t off = i % period;
      const std::size_t len = std::min(end - i, period - off);
      row_fn(ap + i, bp + off, cp + i, len);
      i += len;
    }
  });
  return c;
}

}  // namespace

void bind_add(py::module_& m) {
  m.def("add_f32", [](const py::array_t<float, py::array::c_style>& a,
                      const py::array_t<float, py::array::c_style>& b) {
    return run<float>(a, b, [](const float* x, const float* y, float* z, std::size_t n) {
      add::add_f32_row(x, y, z, n);
    });
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
    return run<int8_t>(a, b, [r](const int8_t* x, const int8_t* y, int8_t* z, std::size_t n) {
      add::add_i8_row(x, y, z, n, r);
    });
  }, py::arg("a"), py::arg("b"), py::arg("a_scale"), py::arg("b_scale"), py::arg("out_scale"),
  "c = sat127((a*ma + b*mb + 2^(e-1)) >> e): int8 add with rescale.");

  m.def("add_dynamic_out_scale", [](double a_scale, double b_scale) {
    return add::dynamic_out_scale(checked_scale(a_scale, "a_scale"),
                                  checked_scale(b_scale, "b_scale"));
  }, py::arg("a_scale"), py::arg("b_scale"), "Dynamic-mode output scale a_scale + b_scale (fp32).");
}

}  // namespace xdna
