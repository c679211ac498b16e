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
#include "int8_gemm_packed.h"
#include "parallel.h"
#include "quantize.h"
#include "quantize/quantize.h"

namespace py = pybind11;

namespace xdna {
namespace {

using F32 = py::array_t<float, py::array::c_style>;
using I8 = py::array_t<int8_t, py::array::c_style>;

constexpr int kTileT = 192;  // output positions per GEMM tile (amortises B packing)

float checked_scale(double s, const char* name) {
  const float f = static_cast<float>(s);
  if (!(s > 0.0) || !std::isfinite(s) || !(f > 0.0f) || !std::isfinite(f))
    throw py::value_error(std::string(name) + " must be a positive finite float32");
  return f;
}

// max|x| / 127 in fp32, 1.0 when x is all zero (same rule as dynamic quantize).
float dynamic_in_scale(const float* x, std::size_t n) {
  std::vector<float> part(static_cast<std::size_t>(num_threads()) + 1, 0.0f);
  std::size_t chunk = (n + part.size() - 1) / part.size();
  parallel_for(part.size(), 1, [&](std::size_t b, std::size_t e) {
    for (std::size_t c = b; c < e; ++c) {
      float m = 0.0f;
      const std::size_t lo = c * chunk, hi = std::min(n, lo + chunk);
      for (std::size_t i = lo; i < hi; ++i) {
        const float a = std::fabs(x[i]);
        m = a > m ? a : m;
      }
      part[c] = m;
    }
  });
  float amax = 0.0f;
  for (float m : part) amax = m > amax ? m : amax;
  return quant::dynamic_scale(amax);  // the dynamic quantize kernel's rule
}

struct Conv {
  int B, Cin, T, Cout, Kw, stride, pad, Tout;
};

// Returns false (output unspecified) when x holds NaN.
bool run_conv(const Conv& c, const float* x, float in_scale, const int8_t* w,
              const float* w_scale, const float* bias, float* y) {
  const std::size_t n_in = static_cast<std::size_t>(c.B) * c.Cin * c.T;
  std::vector<int8_t> q(n_in);
  if (!quantize_static(x, n_in, in_scale, q.data())) return false;  // quantize kernel's path
  std::vector<float> scale(c.Cout);
  for (int co = 0; co < c.Cout; ++co) scale[co] = conv1d::out_scale(in_scale, w_scale[co]);
  const int K = c.Cin * c.Kw;
  // Pack the weight ([Cout, K] = B transposed) once for every tile.
  PackedB pb;
  pb.K = K;
  pb.N = c.Cout;
  pb.Kp = (K + kKGroup - 1) / kKGroup * kKGroup;
  pb.Np = (c.Cout + kPanelCols - 1) / kPanelCols * kPanelCols;
  std::vector<int8_t> packed(static_cast<std::size_t>(pb.Np) * pb.Kp);
  std::vector<int32_t> colsum(pb.Np);
  pack_b(K, c.Cout, w, K, /*transposed=*/true, packed.data(), colsum.data());
  pb.data = packed.data();
  pb.colsum = colsum.data();
  const PackedKernel kernel = packed_kernel_for_active_isa();
  const int panels = pb.Np / kPanelCols;
  const int tiles_per_batch = (c.Tout + kTileT - 1) / kTileT;
  const std::size_t tiles = static_cast<std::size_t>(c.B) * tiles_per_batch;
  parallel_for(tiles, 1, [&](std::size_t tb, std::size_t te) {
    std::vector<int8_t> col(static_cast<std::size_t>(kTileT) * K);
    std::vector<int32_t> acc(static_cast<std::size_t>(kTileT) * c.Cout);
    for (std::size_t tile = tb; tile < te; ++tile) {
      const int b = static_cast<int>(tile / tiles_per_batch);
      const int t0 = static_cast<int>(tile % tiles_per_batch) * kTileT;
      const int nt = std::min(kTileT, c.Tout - t0);
      const int8_t* qb = q.data() + static_cast<std::size_t>(b) * c.Cin * c.T;
      for (int t = 0; t < nt; ++t)
        conv1d::im2col_row(qb, c.Cin, c.T, c.Kw, c.stride, c.pad, t0 + t,
                           col.data() + static_cast<std::size_t>(t) * K);
      Epilogue epi;  // kInt32: raw accumulators, the fp32 epilogue follows below
      epi.out = acc.data();
      epi.ldo = c.Cout;
      kernel(pb, col.data(), K, 0, nt, 0, panels, epi);
      float* yb = y + static_cast<std::size_t>(b) * c.Cout * c.Tout;
      for (int co = 0; co < c.Cout; ++co) {
        float* yr = yb + static_cast<std::size_t>(co) * c.Tout + t0;
        for (int t = 0; t < nt; ++t)
          yr[t] = dequantize(acc[static_cast<std::size_t>(t) * c.Cout + co], scale[co], bias[co]);
      }
    }
  });
  return true;
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
    if (in_scale.is_none()) si = dynamic_in_scale(xp, static_cast<std::size_t>(x.size()));
    ok = std::isfinite(si) && run_conv(c, xp, si, wp, ws, bp, yp);
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
