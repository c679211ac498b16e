// Python bindings of quantize (static / dynamic scale) and dequantize.
#include <pybind11/numpy.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "bind_checks.h"
#include "bindings.h"
#include "common/dynamic_scale.h"
#include "quantize.h"

namespace py = pybind11;

namespace xdna {
namespace {

std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

py::array_t<int8_t> run_quantize(const py::array_t<float>& x, float scale) {
  py::array_t<int8_t> q(shape_of(x));
  bool ok;
  {
    py::gil_scoped_release release;
    ok = quantize_static(x.data(), static_cast<std::size_t>(x.size()), scale, q.mutable_data());
  }
  if (!ok) throw py::value_error("x contains NaN, which has no int8 value");
  return q;
}

py::array_t<int8_t> quantize_py(const py::handle& x_obj, double scale) {
  auto x = checks::array_of<float>(x_obj, "x");
  checks::require_nonempty(x, "x");
  return run_quantize(x, checks::require_scale(scale, "scale"));
}

py::tuple quantize_dynamic_py(const py::handle& x_obj, double neg_limit) {
  auto x = checks::array_of<float>(x_obj, "x");
  checks::require_nonempty(x, "x");
  const float lim = static_cast<float>(neg_limit);
  if (!(neg_limit >= 0.0) || !std::isfinite(lim))
    throw py::value_error("neg_limit must be a finite float32 >= 0 (0: none)");
  bool finite;
  float scale;
  {
    py::gil_scoped_release release;
    scale = dynamic_quantize_scale(x.data(), static_cast<std::size_t>(x.size()), lim, &finite);
  }
  if (!finite) throw py::value_error("x contains NaN or inf: no dynamic int8 scale exists");
  return py::make_tuple(run_quantize(x, scale), scale);
}

py::array_t<float> dequantize_py(const py::handle& q_obj, double scale) {
  auto q = checks::array_of<int8_t>(q_obj, "q");
  checks::require_nonempty(q, "q");
  const float s = checks::require_scale(scale, "scale");
  py::array_t<float> x(shape_of(q));
  {
    py::gil_scoped_release release;
    dequantize(q.data(), static_cast<std::size_t>(q.size()), s, x.mutable_data());
  }
  return x;
}

float checked_neg_limit(double neg_limit) {
  const float lim = static_cast<float>(neg_limit);
  if (!(neg_limit >= 0.0) || !std::isfinite(lim))
    throw py::value_error("neg_limit must be a finite float32 >= 0 (0: none)");
  return lim;
}

// One producer core's partial over x (any shape): common/dynamic_scale.h fold.
py::array_t<float> dynamic_scale_partial_py(const py::handle& x_obj) {
  auto x = checks::array_of<float>(x_obj, "x");
  checks::require_nonempty(x, "x");
  dynscale::Partial p = dynscale::empty();
  dynscale::fold(&p, x.data(), static_cast<std::size_t>(x.size()));
  py::array_t<float> out(static_cast<py::ssize_t>(dynscale::kWords));
  std::memcpy(out.mutable_data(), &p, sizeof p);
  return out;
}

// The reducer: partials float32 [n, 4] -> params float32 [4] {scale, 1/scale, flag, 0}.
py::array_t<float> dynamic_scale_reduce_py(const py::handle& parts_obj, double neg_limit) {
  auto parts = checks::array_of<float>(parts_obj, "partials");
  checks::require_ndim(parts, 2, "partials");
  checks::require_nonempty(parts, "partials");
  if (parts.shape(1) != static_cast<py::ssize_t>(dynscale::kWords))
    throw py::value_error("partials must have shape (n, 4)");
  std::vector<dynscale::Partial> ps(static_cast<std::size_t>(parts.shape(0)));
  std::memcpy(ps.data(), parts.data(), ps.size() * sizeof(dynscale::Partial));
  const dynscale::Params r = dynscale::reduce(ps.data(), ps.size(), checked_neg_limit(neg_limit));
  py::array_t<float> out(static_cast<py::ssize_t>(dynscale::kWords));
  std::memcpy(out.mutable_data(), &r, sizeof r);
  return out;
}

}  // namespace

void bind_quantize(py::module_& m) {
  m.def("quantize", &quantize_py, py::arg("x"), py::arg("scale"),
        "float32 -> int8: sat127(rint(x * (1/scale))) with a static per-tensor scale.");
  m.def("quantize_dynamic", &quantize_dynamic_py, py::arg("x"), py::arg("neg_limit") = 0.0,
        "float32 -> (int8, scale) with scale = max|x|/127 (1.0 when all zero); neg_limit > 0 "
        "(a GELU input): max|x| capped at max(max x, neg_limit).");
  m.def("dynamic_scale_partial", &dynamic_scale_partial_py, py::arg("x"),
        "A producer core's partial of a dynamic scale (common/dynamic_scale.h fold): float32[4] "
        "{max|x|, max x, non-finite flag, 0}.");
  m.def("dynamic_scale_reduce", &dynamic_scale_reduce_py, py::arg("partials"),
        py::arg("neg_limit") = 0.0,
        "The reducer core: partials float32[n, 4] -> params float32[4] {scale, 1/scale, flag, 0} "
        "by the quantize contract's dynamic rule (common/dynamic_scale.h reduce).");
  m.def("dequantize", &dequantize_py, py::arg("q"), py::arg("scale"),
        "int8 -> float32: float(q) * scale.");
}

}  // namespace xdna
