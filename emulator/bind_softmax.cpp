// Python bindings of the softmax kernel. Argument validation with readable
// messages lives in xdna_ep/kernels/softmax.py; the checks here only keep a
// bad direct call from reading out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <optional>
#include <vector>

#include "../kernels/softmax/softmax.h"
#include "bindings.h"
#include "mask_host.h"
#include "softmax_host.h"

namespace py = pybind11;

namespace xdna {

Requant checked_requant(int32_t multiplier, int32_t shift, const char* what) {
  if (multiplier < 0 || shift < 1 || shift > 62)
    throw py::value_error(std::string(what) + ": requant needs multiplier >= 0 and 1 <= shift <= 62");
  return Requant{multiplier, shift};
}

void bind_softmax(py::module_& m) {
  using I8 = py::array_t<int8_t, py::array::c_style>;
  using F32 = py::array_t<float, py::array::c_style>;
  using I64 = py::array_t<int64_t, py::array::c_style>;
  m.def(
      "softmax_int8",
      [](const I8& x, int32_t logit_mult, int32_t logit_shift, bool causal, int64_t query_len,
         int64_t past_len, std::optional<F32> mask, std::optional<I64> mask_row_offset,
         int64_t mask_col_stride) {
        if (x.ndim() < 1) throw py::value_error("x: needs at least one dimension");
        const int64_t n = x.shape(x.ndim() - 1);
        const int64_t rows = n ? x.size() / n : 0;
        SoftmaxArgs a;
        a.x = x.data();
        a.rows = rows;
        a.n = n;
        a.logit_rq = checked_requant(logit_mult, logit_shift, "logit");
        a.causal = causal;
        if (causal && (query_len < 1 || past_len < 0))
          throw py::value_error("causal softmax needs query_len >= 1 and past_len >= 0");
        a.query_len = query_len < 1 ? 1 : query_len;
        a.past_len = past_len;
        if (mask.has_value() != mask_row_offset.has_value())
          throw py::value_error("mask and mask_row_offset go together");
        if (mask) {
          if (mask_row_offset->size() != rows)
            throw py::value_error("mask_row_offset: needs one offset per row");
          if (mask_col_stride != 0 && mask_col_stride != 1)
            throw py::value_error("mask_col_stride: must be 0 or 1");
          const int64_t* off = mask_row_offset->data();
          const int64_t span = n > 0 ? (n - 1) * mask_col_stride : 0;
          for (int64_t r = 0; r < rows; ++r)
            if (off[r] < 0 || off[r] + span >= mask->size())
              throw py::value_error("mask_row_offset: offset outside the mask");
          a.mask = mask->data();
          a.mask_row_offset = off;
          a.mask_col_stride = mask_col_stride;
        }
        std::vector<py::ssize_t> shape(x.shape(), x.shape() + x.ndim());
        py::array_t<int8_t> out(shape);
        a.out = out.mutable_data();
        {
          py::gil_scoped_release release;
          softmax_int8(a);
        }
        return out;
      },
      py::arg("x"), py::arg("logit_mult"), py::arg("logit_shift"), py::arg("causal") = false,
      py::arg("query_len") = 1, py::arg("past_len") = 0, py::arg("mask") = py::none(),
      py::arg("mask_row_offset") = py::none(), py::arg("mask_col_stride") = 1,
      "Fixed-point row softmax of int8 scores (kernels/softmax/softmax.h). Raw entry: "
      "use xdna_ep.kernels.softmax.softmax.");
  m.def(
      "softmax_mask_rows",
      [](const std::vector<int64_t>& mask_shape, const std::vector<int64_t>& x_shape) {
        std::vector<int64_t> strides;
        if (x_shape.empty() || !mask_broadcast_strides(mask_shape, x_shape, &strides))
          throw py::value_error("mask shape does not broadcast to x's shape");
        const std::vector<int64_t> offsets = mask_row_offsets(x_shape, strides);
        py::array_t<int64_t> out(static_cast<py::ssize_t>(offsets.size()));
        std::copy(offsets.begin(), offsets.end(), out.mutable_data());
        return py::make_tuple(out, strides.back());
      },
      py::arg("mask_shape"), py::arg("x_shape"),
      "(mask_row_offset, mask_col_stride) of a C-contiguous mask broadcast to x's shape, for "
      "softmax_int8 (mask_host.h: the same offsets the plugin's softmax stage uses).");
  m.def("softmax_exp_table", [] {
    py::array_t<uint32_t> t(256);
    for (int i = 0; i < 256; ++i) t.mutable_data()[i] = softmax::kExpTable[i];
    return t;
  }, "The 256-entry exp table of the softmax contract (2^24 * 2^(-f/256)).");
  m.def("softmax_constants", [] {
    py::dict d;
    d["frac_bits"] = softmax::kFracBits;
    d["exp_one"] = softmax::kExpOne;
    d["max_shift"] = softmax::kMaxShift;
    d["recip_extra_bits"] = softmax::kRecipExtraBits;
    d["logit_limit"] = softmax::kLogitLimit;
    d["excluded_logit"] = softmax::kExcludedLogit;
    d["mask_exclude"] = softmax::kMaskExclude;
    d["mask_limit"] = softmax::kMaskLimit;
    d["mask_to_fixed"] = softmax::kMaskToFixed;
    return d;
  }, "Constants of the softmax contract (tests compare them with the numpy reference).");
}

}  // namespace xdna
