// Host emulator of the GELU kernel (kernels/gelu/gelu.h): table build + apply.
#include <pybind11/numpy.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "../kernels/gelu/gelu.h"
#include "bindings.h"
#include "gelu_host.h"

namespace py = pybind11;

namespace xdna {
namespace {

bool parse_approximate(const std::string& approximate) {
  if (approximate == "none") return false;
  if (approximate == "tanh") return true;
  throw py::value_error("approximate must be 'none' or 'tanh', got '" + approximate + "'");
}

float checked_scale(double s, const char* name) {
  if (!(s > 0.0) || !std::isfinite(s) || !std::isfinite(static_cast<float>(s)) ||
      static_cast<float>(s) <= 0.0f)
    throw py::value_error(std::string(name) + " must be a positive finite float32");
  return static_cast<float>(s);
}

using I8 = py::array_t<int8_t, py::array::c_style>;

py::array_t<int8_t> table_array(float in_scale, float out_scale, bool tanh_approx,
                                float out_offset) {
  py::array_t<int8_t> t(gelu::kTableSize);
  gelu::build_table(in_scale, out_scale, tanh_approx, t.mutable_data(), out_offset);
  return t;
}

// y = table[x + 128], gelu_host.h's loop over the thread pool (GIL released).
py::array_t<int8_t> apply(const I8& x, const int8_t* table) {
  py::array_t<int8_t> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
  const int8_t* xp = x.data();
  int8_t* yp = y.mutable_data();
  const std::size_t n = static_cast<std::size_t>(x.size());
  {
    py::gil_scoped_release nogil;
    gelu_apply(xp, yp, n, table);
  }
  return y;
}

}  // namespace

void bind_gelu(py::module_& m) {
  m.def("gelu_table", [](double in_scale, double out_scale, const std::string& approximate,
                         double out_offset) {
    if (!std::isfinite(out_offset) || !std::isfinite(static_cast<float>(out_offset)))
      throw py::value_error("out_offset must be a finite float32");
    return table_array(checked_scale(in_scale, "in_scale"), checked_scale(out_scale, "out_scale"),
                       parse_approximate(approximate), static_cast<float>(out_offset));
  }, py::arg("in_scale"), py::arg("out_scale"), py::arg("approximate") = "none",
  py::arg("out_offset") = 0.0,
  "The 256-entry int8 GELU table (index q + 128; output code q stands for "
  "q * out_scale + out_offset); the one place it is built.");

  m.def("gelu_dynamic_out_scale", [](double in_scale, int qmin, int qmax,
                                     const std::string& approximate) {
    if (qmin < -128 || qmax > 127 || qmin > qmax)
      throw py::value_error("need -128 <= qmin <= qmax <= 127");
    return gelu::dynamic_out_scale(checked_scale(in_scale, "in_scale"), qmin, qmax,
                                   parse_approximate(approximate));
  }, py::arg("in_scale"), py::arg("qmin"), py::arg("qmax"), py::arg("approximate") = "none",
  "Dynamic-mode output scale: max |gelu(q s)| over q = qmin..qmax, / 127, in fp32.");

  m.def("gelu_apply", [](const I8& x, const I8& table) {
    if (table.ndim() != 1 || table.shape(0) != gelu::kTableSize)
      throw py::value_error("table must be int8 [256]");
    return apply(x, table.data());
  }, py::arg("x"), py::arg("table"), "Static GELU: y = table[x + 128].");

  m.def("gelu_dynamic", [](const I8& x, double in_scale, const std::string& approximate) {
    const bool tanh_approx = parse_approximate(approximate);
    const float si = checked_scale(in_scale, "in_scale");
    if (x.size() == 0) throw py::value_error("x is empty");
    int8_t table[gelu::kTableSize];
    float so;
    {
      py::gil_scoped_release nogil;
      so = gelu_dynamic_table(x.data(), static_cast<std::size_t>(x.size()), si, tanh_approx, table);
    }
    return py::make_tuple(apply(x, table), so);
  }, py::arg("x"), py::arg("in_scale"), py::arg("approximate") = "none",
  "Dynamic GELU: builds the table from in_scale per call; returns (y, out_scale).");
}

}  // namespace xdna
