// Host emulator of the conv1d kernel (kernels/conv1d/conv1d.h): quantize ->
// im2col -> exact int8 GEMM (the matmul kernel's packed engine,
// emulator/int8_gemm_packed.h, ISA-dispatched; the weight is packed once per call)
// -> fp32 epilogue written straight into the [Cout, Tout] layout.
#include <pybind11/numpy.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "../kernels/common/epilogue.h"
#include "../kernels/conv1d/conv1d.h"
#include "bindings.h"
#include "conv1d_host.h"
#include "int8_gemm_packed.h"
#include "parallel.h"
#include "quantize.h"
#include "quantize/quantize.h"

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

py::array_t<float> conv1d_entry(const F32& x, const I8& weight, const F32& w_scale,
                                const F32& bias, int stride, int pad, py::object in_scale) {
  if (x.ndim() != 3) throw py::value_error("x must be float32 [B, Cin, T]");
  if (weight.ndim() != 3) throw py::value_error("weight must be int8 [Cout, Cin, Kw]");
  Conv c{};
  c.B = static_cast<int>(x.shape(0));
  c.Cin = static_cast<int>(x.shape(1));
  c.T = static_cast<int>(x.shape(2));
  c.Cout = static_cast<int>(weight.shape(0));
  c.Kw = static_cast<int>(weight.shape(2));
  if (weight.shape(1) != c.Cin) throw py::value_error("weight's Cin must match x's Cin");
  if (c.Cout < 1 || c.Kw < 1 || c.Cin < 1) throw py::value_error("weight has a zero-size dim");
  if (w_scale.ndim() != 1 || w_scale.shape(0) != c.Cout)
    throw py::value_error("w_scale must be float32 [Cout]");
  if (bias.ndim() != 1 || bias.shape(0) != c.Cout)
    throw py::value_error("bias must be float32 [Cout]");
  if (stride < 1) throw py::value_error("stride must be >= 1");
  if (pad < 0) throw py::value_error("pad must be >= 0");
  c.stride = stride;
  c.pad = pad;
  c.Tout = conv1d::out_length(c.T, c.Kw, stride, pad);
  py::array_t<float> y(std::vector<py::ssize_t>{c.B, c.Cout, c.Tout});
  if (c.B == 0 || c.Tout == 0) return y;
  const float* xp = x.data();
  float si = 0.0f;
  if (!in_scale.is_none()) si = checked_scale(in_scale.cast<double>(), "in_scale");
  const int8_t* wp = weight.data();
  const float* ws = w_scale.data();
  const float* bp = bias.data();
  float* yp = y.mutable_data();
  bool ok;
  {
    py::gil_scoped_release nogil;
    if (in_scale.is_none()) si = conv1d_dynamic_in_scale(xp, static_cast<std::size_t>(x.size()));
    ok = std::isfinite(si) && conv1d_run(c, xp, si, wp, ws, bp, yp);
  }
  if (!ok) throw py::value_error("x contains NaN or Inf");
  return y;
}

}  // namespace

void bind_conv1d(py::module_& m) {
  m.def("conv1d", &conv1d_entry, py::arg("x"), py::arg("weight"), py::arg("w_scale"),
        py::arg("bias"), py::arg("stride") = 1, py::arg("pad") = 0,
        py::arg("in_scale") = py::none(),
        "fp32 [B,Cin,T] -> int8 (static in_scale, or dynamic when None) -> im2col ->\n"
        "int8 GEMM -> fp32 [B,Cout,Tout] with per-channel w_scale and bias.");
}

}  // namespace xdna
