// Python bindings of the matmul kernel: weight packing (once per program
// load) and the int8 / float32 output variants, plus the shared NT GEMM.
#include <pybind11/numpy.h>

#include <memory>
#include <string>
#include <vector>

#include "bind_checks.h"
#include "bindings.h"
#include "int8_gemm.h"
#include "int8_gemm_packed.h"
#include "matmul/matmul.h"
#include "packed_weights.h"

namespace py = pybind11;

namespace xdna {
namespace {

// MatmulWeights is the kernel library's PackedWeights (packed_weights.h), the
// plugin's matmul stage packs the same way. Owned by C++ so that Python never
// sees (or can corrupt) the packed bytes.
std::shared_ptr<PackedWeights> pack_weights_py(const py::handle& w_obj) {
  auto w = checks::array_of<int8_t>(w_obj, "weight");
  checks::require_ndim(w, 2, "weight");
  checks::require_nonempty(w, "weight");
  const long K = w.shape(0), N = w.shape(1);
  if (K > kMaxK)
    throw py::value_error("weight: K = " + std::to_string(K) + " exceeds the kernel limit " +
                          std::to_string(kMaxK));
  if (N > (1L << 30)) throw py::value_error("weight: N is too large");
  const int8_t* p = w.data();
  if (has_int8_min(p, static_cast<size_t>(K * N)))
    throw py::value_error("weight must lie in [-127, 127] (narrow int8 range); found -128");
  auto out = std::make_shared<PackedWeights>();
  {
    py::gil_scoped_release release;
    pack_weights(static_cast<int>(K), static_cast<int>(N), p, N, out.get());
  }
  return out;
}

// a: int8 [M, K] (C-contiguous). Returns M.
long check_activations(const py::array_t<int8_t>& a, const PackedWeights& w) {
  checks::require_ndim(a, 2, "a");
  checks::require_nonempty(a, "a");
  if (a.shape(1) != w.K)
    throw py::value_error("a has K = " + std::to_string(a.shape(1)) + " but weight has K = " +
                          std::to_string(w.K));
  if (a.shape(0) > (1L << 30)) throw py::value_error("a: M is too large");
  return a.shape(0);
}

// Column blocks of a split-output matmul (fused q/k/v): validated bounds and
// one freshly allocated [M, Ni] array per block, wired into the epilogue.
template <class T>
struct SplitOutputs {
  std::vector<int> bounds;
  std::vector<void*> ptrs;
  py::list arrays;

  SplitOutputs(const py::handle& split_obj, long M, int N) {
    bounds.push_back(0);
    for (const py::handle& h : split_obj) {
      if (!py::isinstance<py::int_>(h) || py::isinstance<py::bool_>(h))
        throw py::type_error("split must be a sequence of ints");
      const long n = h.cast<long>();
      if (n <= 0) throw py::value_error("split: every block width must be > 0");
      if (bounds.back() + n > N)
        throw py::value_error("split: block widths sum past N = " + std::to_string(N));
      bounds.push_back(bounds.back() + static_cast<int>(n));
      py::array_t<T> y({M, n});
      ptrs.push_back(y.mutable_data());
      arrays.append(y);
    }
    if (bounds.size() < 2) throw py::value_error("split must name at least one block");
    if (bounds.back() != N)
      throw py::value_error("split: block widths sum to " + std::to_string(bounds.back()) +
                            ", weight has N = " + std::to_string(N));
  }

  void wire(Epilogue& epi) const {
    epi.nsplit = static_cast<int>(ptrs.size());
    epi.split_start = bounds.data();
    epi.split_out = ptrs.data();
  }
};

py::object matmul_int8(const py::handle& a_obj, const PackedWeights& w,
                       const py::handle& mult_obj, const py::handle& shift_obj,
                       const py::handle& bias_obj, const py::handle& split_obj) {
  auto a = checks::array_of<int8_t>(a_obj, "a");
  const long M = check_activations(a, w);
  auto mult = checks::array_of<int32_t>(mult_obj, "mult");
  auto shift = checks::array_of<int32_t>(shift_obj, "shift");
  auto bias = checks::array_of<int32_t>(bias_obj, "bias");
  checks::require_len(mult, w.N, "mult");
  checks::require_len(shift, w.N, "shift");
  checks::require_len(bias, w.N, "bias");
  for (long n = 0; n < w.N; ++n) {
    if (mult.data()[n] < 0) throw py::value_error("mult must be >= 0");
    if (shift.data()[n] < 1 || shift.data()[n] > 62)
      throw py::value_error("shift must lie in [1, 62]");
    if (bias.data()[n] < -kMaxBiasI32 || bias.data()[n] > kMaxBiasI32)
      throw py::value_error("bias must lie in [-2^30, 2^30]");
  }
  Epilogue epi;
  epi.kind = EpilogueKind::kRequantInt8;
  epi.mult = mult.data();
  epi.shift = shift.data();
  epi.bias_i32 = bias.data();
  if (!split_obj.is_none()) {
    SplitOutputs<int8_t> outs(split_obj, M, w.N);
    outs.wire(epi);
    {
      py::gil_scoped_release release;
      gemm_packed_parallel(w.view(), a.data(), w.K, static_cast<int>(M), epi);
    }
    return std::move(outs.arrays);
  }
  py::array_t<int8_t> y({M, static_cast<long>(w.N)});
  epi.out = y.mutable_data();
  epi.ldo = w.N;
  {
    py::gil_scoped_release release;
    gemm_packed_parallel(w.view(), a.data(), w.K, static_cast<int>(M), epi);
  }
  return std::move(y);
}

py::object matmul_f32(const py::handle& a_obj, const PackedWeights& w,
                      const py::handle& scale_obj, const py::handle& bias_obj,
                      const py::handle& split_obj) {
  auto a = checks::array_of<int8_t>(a_obj, "a");
  const long M = check_activations(a, w);
  auto scale = checks::array_of<float>(scale_obj, "scale");
  auto bias = checks::array_of<float>(bias_obj, "bias");
  checks::require_len(scale, w.N, "scale");
  checks::require_len(bias, w.N, "bias");
  Epilogue epi;
  epi.kind = EpilogueKind::kDequantF32;
  epi.scale = scale.data();
  epi.bias_f32 = bias.data();
  if (!split_obj.is_none()) {
    SplitOutputs<float> outs(split_obj, M, w.N);
    outs.wire(epi);
    {
      py::gil_scoped_release release;
      gemm_packed_parallel(w.view(), a.data(), w.K, static_cast<int>(M), epi);
    }
    return std::move(outs.arrays);
  }
  py::array_t<float> y({M, static_cast<long>(w.N)});
  epi.out = y.mutable_data();
  epi.ldo = w.N;
  {
    py::gil_scoped_release release;
    gemm_packed_parallel(w.view(), a.data(), w.K, static_cast<int>(M), epi);
  }
  return std::move(y);
}

py::array_t<int32_t> gemm_nt(const py::handle& a_obj, const py::handle& bt_obj) {
  auto a = checks::array_of<int8_t>(a_obj, "a");
  auto bt = checks::array_of<int8_t>(bt_obj, "bt");
  checks::require_ndim(a, 2, "a");
  checks::require_ndim(bt, 2, "bt");
  checks::require_nonempty(a, "a");
  checks::require_nonempty(bt, "bt");
  if (a.shape(1) != bt.shape(1)) throw py::value_error("a and bt must have the same K");
  if (a.shape(1) > kMaxK) throw py::value_error("K exceeds the kernel limit");
  const long M = a.shape(0), N = bt.shape(0), K = a.shape(1);
  if (has_int8_min(bt.data(), static_cast<size_t>(N * K)))
    throw py::value_error("bt must lie in [-127, 127]; found -128");
  py::array_t<int32_t> c({M, N});
  {
    py::gil_scoped_release release;
    gemm_s8s8s32_nt(static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), a.data(),
                    static_cast<int>(K), bt.data(), static_cast<int>(K), c.mutable_data(),
                    static_cast<int>(N));
  }
  return c;
}

// The plain reference loops of kernels/matmul/matmul.h (the header the AIE
// source shares), unpacked weights, single thread: lets the tests check that
// the header's loop structure and the fast packed paths agree.
py::array header_reference(const py::handle& a_obj, const py::handle& w_obj,
                           const py::handle& p0_obj, const py::handle& p1_obj,
                           const py::handle& p2_obj, const std::string& out) {
  auto a = checks::array_of<int8_t>(a_obj, "a");
  auto w = checks::array_of<int8_t>(w_obj, "weight");
  checks::require_ndim(a, 2, "a");
  checks::require_ndim(w, 2, "weight");
  checks::require_nonempty(a, "a");
  checks::require_nonempty(w, "weight");
  const long M = a.shape(0), K = a.shape(1), N = w.shape(1);
  if (w.shape(0) != K) throw py::value_error("a and weight disagree on K");
  if (K > kMaxK) throw py::value_error("K exceeds the kernel limit");
  if (out == "int8") {
    auto mult = checks::array_of<int32_t>(p0_obj, "mult");
    auto shift = checks::array_of<int32_t>(p1_obj, "shift");
    auto bias = checks::array_of<int32_t>(p2_obj, "bias");
    checks::require_len(mult, N, "mult");
    checks::require_len(shift, N, "shift");
    checks::require_len(bias, N, "bias");
    for (long n = 0; n < N; ++n)
      if (shift.data()[n] < 1 || shift.data()[n] > 62 || mult.data()[n] < 0 ||
          bias.data()[n] < -kMaxBiasI32 || bias.data()[n] > kMaxBiasI32)
        throw py::value_error("mult/shift/bias out of range");
    py::array_t<int8_t> y({M, N});
    matmul::reference_int8(static_cast<int>(M), static_cast<int>(N), static_cast<int>(K),
                           a.data(), w.data(), bias.data(), mult.data(), shift.data(),
                           y.mutable_data());
    return y;
  }
  if (out != "float32") throw py::value_error("out must be 'int8' or 'float32'");
  auto scale = checks::array_of<float>(p0_obj, "scale");
  auto bias = checks::array_of<float>(p1_obj, "bias");
  checks::require_len(scale, N, "scale");
  checks::require_len(bias, N, "bias");
  py::array_t<float> y({M, N});
  matmul::reference_f32(static_cast<int>(M), static_cast<int>(N), static_cast<int>(K), a.data(),
                        w.data(), scale.data(), bias.data(), y.mutable_data());
  return y;
}

}  // namespace

void bind_matmul(py::module_& m) {
  py::class_<PackedWeights, std::shared_ptr<PackedWeights>>(
      m, "MatmulWeights", "int8 weights [K, N] packed once for the host matmul kernels.")
      .def_property_readonly("K", [](const PackedWeights& w) { return w.K; })
      .def_property_readonly("N", [](const PackedWeights& w) { return w.N; })
      .def_property_readonly("nbytes", [](const PackedWeights& w) {
        return w.data.size() + 4 * w.colsum.size();
      });
  m.def("matmul_pack", &pack_weights_py, py::arg("weight"),
        "Pack int8 weights [K, N] (values in [-127, 127]) for matmul_int8/matmul_f32.");
  m.def("matmul_int8", &matmul_int8, py::arg("a"), py::arg("weight"), py::arg("mult"),
        py::arg("shift"), py::arg("bias"), py::arg("split") = py::none(),
        "y[m,n] = requantize(sum_k a[m,k] w[k,n] + bias[n], (mult[n], shift[n])) -> int8 [M,N]; "
        "with split=[N0, N1, ...] (sum N) a list of the column blocks [M, Ni], each written "
        "directly by the epilogue.");
  m.def("matmul_f32", &matmul_f32, py::arg("a"), py::arg("weight"), py::arg("scale"),
        py::arg("bias"), py::arg("split") = py::none(),
        "y[m,n] = float(sum_k a[m,k] w[k,n]) * scale[n] + bias[n] -> float32 [M,N]; "
        "split=[N0, ...] returns the column blocks [M, Ni] as a list.");
  m.def("matmul_header_reference", &header_reference, py::arg("a"), py::arg("weight"),
        py::arg("p0"), py::arg("p1"), py::arg("p2") = py::none(), py::arg("out") = "int8",
        "Reference loops of kernels/matmul/matmul.h on unpacked weights (tests): int8 out "
        "takes (mult, shift, bias_i32), float32 out takes (scale, bias).");
  m.def("gemm_s8s8s32_nt", &gemm_nt, py::arg("a"), py::arg("bt"),
        "Exact int32 a [M,K] x bt[N,K]^T through the shared int8 GEMM (single thread).");
}

}  // namespace xdna
