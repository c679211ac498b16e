// Python bindings of the attention kernel. Readable argument validation lives
// in xdna_ep/kernels/attention.py; the checks here keep a bad direct call
// from reading or writing out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>

#include "../kernels/attention/attention.h"
#include "attention_host.h"
#include "bindings.h"

namespace py = pybind11;

namespace xdna {

Requant checked_requant(int32_t multiplier, int32_t shift, const char* what);  // bind_softmax.cpp

void bind_attention(py::module_& m) {
  using I8 = py::array_t<int8_t, py::array::c_style>;
  using F32 = py::array_t<float, py::array::c_style>;
  m.def(
      "attention_int8",
      [](const I8& q, const I8& k, const I8& v, int64_t heads, int32_t logit_mult,
         int32_t logit_shift, bool causal, int64_t past_len, std::optional<F32> mask,
         std::array<int64_t, 4> mask_strides, bool out_float, int32_t out_mult, int32_t out_shift,
         float v_scale) -> py::array {
        if (q.ndim() != 3 || k.ndim() != 3 || v.ndim() != 3)
          throw py::value_error("q, k, v: must be 3-D [B, T, H*Dh]");
        const int64_t B = q.shape(0), tq = q.shape(1), hd = q.shape(2), tk = k.shape(1);
        if (k.shape(0) != B || v.shape(0) != B || k.shape(2) != hd || v.shape(2) != hd ||
            v.shape(1) != tk)
          throw py::value_error("q, k, v: shapes do not match");
        if (heads < 1 || hd % heads != 0) throw py::value_error("heads: must divide H*Dh");
        if (hd / heads > attention::kMaxHeadDim) throw py::value_error("head dim too large");
        if (tk > attention::kMaxKeys) throw py::value_error("k: too many keys");
        if (causal && past_len < 0) throw py::value_error("past_len: must be >= 0");
        AttentionArgs a;
        a.q = q.data();
        a.k = k.data();
        a.v = v.data();
        a.batch = B;
        a.q_len = tq;
        a.k_len = tk;
        a.heads = heads;
        a.head_dim = hd / heads;
        a.logit_rq = checked_requant(logit_mult, logit_shift, "logit");
        a.causal = causal;
        a.past_len = past_len;
        if (mask) {
          const int64_t dims[4] = {B, heads, tq, tk};
          int64_t last = 0;
          for (int i = 0; i < 4; ++i) {
            if (mask_strides[i] < 0) throw py::value_error("mask_strides: must be >= 0");
            last += (dims[i] - 1) * mask_strides[i];
            a.mask_strides[i] = mask_strides[i];
          }
          if (last >= mask->size()) throw py::value_error("mask_strides: reach outside the mask");
          a.mask = mask->data();
        }
        a.out_float = out_float;
        if (out_float) {
          py::array_t<float> out({B, tq, hd});
          a.out_f32 = out.mutable_data();
          a.v_scale = v_scale;
          py::gil_scoped_release release;
          attention_int8(a);
          return std::move(out);
        }
        a.out_rq = checked_requant(out_mult, out_shift, "out");
        py::array_t<int8_t> out({B, tq, hd});
        a.out_i8 = out.mutable_data();
        {
          py::gil_scoped_release release;
          attention_int8(a);
        }
        return std::move(out);
      },
      py::arg("q"), py::arg("k"), py::arg("v"), py::arg("heads"), py::arg("logit_mult"),
      py::arg("logit_shift"), py::arg("causal") = false, py::arg("past_len") = 0,
      py::arg("mask") = py::none(), py::arg("mask_strides") = std::array<int64_t, 4>{0, 0, 0, 0},
      py::arg("out_float") = false, py::arg("out_mult") = 0, py::arg("out_shift") = 31,
      py::arg("v_scale") = 0.0f,
      "int8 multi-head attention in one call (kernels/attention/attention.h). Raw entry: "
      "use xdna_ep.kernels.attention.attention.");
}

}  // namespace xdna
