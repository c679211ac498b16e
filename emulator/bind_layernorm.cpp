// Host emulator of the LayerNorm kernel (kernels/layernorm/layernorm.h).
// One call normalizes every row; the row loop (thread pool) is the kernel
// library's layernorm_rows, shared with the plugin stage.
#include <pybind11/numpy.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "../kernels/common/epilogue.h"
#include "../kernels/layernorm/layernorm.h"
#include "bindings.h"
#include "layernorm_host.h"
#include "quantize.h"

namespace py = pybind11;

namespace xdna {
namespace {

using F32 = py::array_t<float, py::array::c_style>;
using I8 = py::array_t<int8_t, py::array::c_style>;

float checked_scale(double s, const char* name) {
  const float f = static_cast<float>(s);
  if (!(s > 0.0) || !std::isfinite(s) || !(f > 0.0f) || !std::isfinite(f))
    throw py::value_error(std::string(name) + " must be a positive finite float32");
  return f;
}

struct Shape {
  std::size_t rows;
  int C;
};

Shape row_shape(const py::array& x, const F32& gamma, const F32& beta) {
  if (x.ndim() < 1) throw py::value_error("x must have at least one dimension");
  const py::ssize_t C = x.shape(x.ndim() - 1);
  if (C < 1 || C > layernorm::kMaxC)
    throw py::value_error("x's last dimension must be in [1, 8192]");
  if (gamma.ndim() != 1 || gamma.shape(0) != C) throw py::value_error("gamma must be float32 [C]");
  if (beta.ndim() != 1 || beta.shape(0) != C) throw py::value_error("beta must be float32 [C]");
  return Shape{static_cast<std::size_t>(x.size() / C), static_cast<int>(C)};
}

std::vector<py::ssize_t> shape_of(const py::array& x) {
  return std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim());
}

// Normalizes every row into float32 y (the common first step of all variants;
// finite != nullptr: int8 output follows, NaN zeroed, see layernorm_host.h).
void normalize_rows(const py::array& x, bool int8_in, float in_scale, float eps,
                    const float* gamma, const float* beta, Shape s, float* y,
                    std::vector<unsigned char>* finite) {
  const void* xp = x.data();
  py::gil_scoped_release nogil;
  layernorm_rows(xp, int8_in, in_scale, eps, gamma, beta, s.rows, s.C, y,
                 finite ? finite->data() : nullptr);
}

// Quantizes y into q with the quantize kernel's host path (shared epilogue
// quantize, vectorised); y holds no NaN here (normalize_rows zeroed them).
void quantize_rows(const float* y, float scale, Shape s, int8_t* q) {
  py::gil_scoped_release nogil;
  quantize_static(y, s.rows * static_cast<std::size_t>(s.C), scale, q);
}

py::object layernorm_entry(const py::array& x, const F32& gamma, const F32& beta, double epsilon,
                           py::object in_scale, const std::string& out, py::object out_scale) {
  if (!(epsilon > 0.0) || !std::isfinite(epsilon) || !(static_cast<float>(epsilon) > 0.0f))
    throw py::value_error("epsilon must be a positive finite float32");
  const float eps = static_cast<float>(epsilon);
  const bool int8_in = x.dtype().is(py::dtype::of<int8_t>());
  if (!int8_in && !x.dtype().is(py::dtype::of<float>()))
    throw py::type_error("x must be float32 or int8");
  if (!(x.flags() & py::array::c_style)) throw py::value_error("x must be C-contiguous");
  float si = 1.0f;
  if (int8_in) {
    if (in_scale.is_none()) throw py::value_error("in_scale is required for int8 x");
    si = checked_scale(in_scale.cast<double>(), "in_scale");
  }
  if (out != "float32" && out != "int8") throw py::value_error("out must be 'float32' or 'int8'");
  const Shape s = row_shape(x, gamma, beta);
  std::vector<unsigned char> finite(s.rows, 1);
  if (out == "float32") {
    py::array_t<float> y(shape_of(x));
    normalize_rows(x, int8_in, si, eps, gamma.data(), beta.data(), s, y.mutable_data(), nullptr);
    return std::move(y);
  }
  std::vector<float> y(s.rows * static_cast<std::size_t>(s.C));
  normalize_rows(x, int8_in, si, eps, gamma.data(), beta.data(), s, y.data(), &finite);
  py::array_t<int8_t> q(shape_of(x));
  if (out_scale.is_none()) {  // dynamic int8 output
    float so;
    {
      py::gil_scoped_release nogil;
      so = layernorm_dynamic_out_scale(y.data(), s.rows, s.C, finite.data());
    }
    quantize_rows(y.data(), so, s, q.mutable_data());
    return py::make_tuple(q, so);
  }
  const float so = checked_scale(out_scale.cast<double>(), "out_scale");
  quantize_rows(y.data(), so, s, q.mutable_data());
  return std::move(q);
}

}  // namespace

void bind_layernorm(py::module_& m) {
  m.def("layernorm", &layernorm_entry, py::arg("x"), py::arg("gamma"), py::arg("beta"),
        py::arg("epsilon"), py::arg("in_scale") = py::none(), py::arg("out") = "float32",
        py::arg("out_scale") = py::none(),
        "LayerNorm over the last axis with integer (order-independent) statistics.\n"
        "x: float32 or int8 (+in_scale). out='float32' -> y; out='int8' with out_scale ->\n"
        "q; out='int8' without out_scale (dynamic) -> (q, scale).");
}

}  // namespace xdna
