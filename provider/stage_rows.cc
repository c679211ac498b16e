// layernorm, softmax and attention stages (kernels/STAGES.md; Python:
// kernel_specs/layernorm.py, softmax.py, attention.py). Row arithmetic and the
// loops around it come from the kernels' headers and the kernel library
// (layernorm_rows, softmax_int8, attention_int8, mask_broadcast_strides), shared
// with the pybind module; this file only validates and wires buffers.
#include <algorithm>
#include <cmath>
#include <memory>

#include "../kernels/common/epilogue.h"
#include "attention/attention.h"
#include "attention_host.h"
#include "layernorm/layernorm.h"
#include "layernorm_host.h"
#include "mask_host.h"
#include "packed_weights.h"
#include "quantize.h"
#include "runner.h"
#include "softmax_host.h"
#include "stages.h"

namespace xdna::ep {
namespace {

constexpr double kLogitUnitsPerNat = 256.0;  // divided by ln 2 below (softmax.py LOGIT_UNITS_PER_NAT)
constexpr int64_t kMaxKeys = 131072;          // attention.py MAX_KEYS
constexpr float kProbScale = static_cast<float>(1.0 / 127.0);

double real_scale(const StageDef& st, const std::string& key) {
  const double v = st.number(key);
  if (!std::isfinite(v) || v <= 0.0)
    throw UnsupportedStage("XDNA stage " + st.kernel + ": attrs['" + key + "'] must be finite and > 0");
  return v;
}

Requant logit_requant(double real, const std::string& kernel) {
  const double units = real * (kLogitUnitsPerNat / std::log(2.0));
  require(units < 536870912.0, kernel, "logit scale is too large for the fixed-point softmax");
  return make_requant(units);
}

// Element strides of `mask` broadcast (right-aligned) to `target`: 0 where broadcast.
std::vector<int64_t> broadcast_strides(const std::vector<int64_t>& mask, const std::vector<int64_t>& target,
                                       const std::string& kernel) {
  require(mask.size() <= target.size(), kernel, "mask has more dims than its target");
  std::vector<int64_t> strides;
  require(mask_broadcast_strides(mask, target, &strides), kernel,
          "mask shape does not broadcast to its target");
  return strides;
}

int64_t past_len_attr(const StageDef& st, bool* given) {
  const Attr* a = st.attr("past_len");
  *given = a != nullptr;
  if (a == nullptr) return 0;
  const double v = st.number("past_len");
  if (v < 0) throw UnsupportedStage("XDNA stage " + st.kernel + ": past_len must be >= 0");
  return static_cast<int64_t>(v);
}

// -- layernorm ------------------------------------------------------------------------------
class LayerNorm : public StageImpl {
 public:
  explicit LayerNorm(const StageDef& st) : dynamic_(st.flag("dynamic")) {
    if (st.const_form != 1) throw UnsupportedStage("XDNA stage layernorm: constants must be device blobs");
    const Tensor& g = st.constant("#0");
    const Tensor& b = st.constant("#1");
    const Tensor& sc = st.constant("#2");
    if (g.dtype != DType::kFloat32 || b.dtype != DType::kFloat32 || g.count() != b.count() ||
        sc.dtype != DType::kFloat32 || sc.count() != 4)
      throw PayloadError("XDNA stage layernorm: device constants have the wrong types or shapes");
    gamma_.assign(g.data<float>(), g.data<float>() + g.count());
    beta_.assign(b.data<float>(), b.data<float>() + b.count());
    const double eps = st.number_or("epsilon", 1e-5);
    eps_ = static_cast<float>(eps);
    if (!(eps > 0.0) || !std::isfinite(eps) || !(eps_ > 0.0f))
      throw UnsupportedStage("XDNA stage layernorm: epsilon must be a positive finite float32");
    if (sc.data<float>()[0] != eps_)
      throw PayloadError("XDNA stage layernorm: the scalar block disagrees with attrs['epsilon']");
    out_ = st.string_or("out", "float32");
    if (out_ != "float32" && out_ != "int8")
      throw UnsupportedStage("XDNA stage layernorm: attrs['out'] must be float32 or int8");
    if (st.attr("in_scale") != nullptr && !dynamic_)
      in_scale_ = scale_value(st.number("in_scale"), "layernorm", "attrs['in_scale']");
    if (out_ == "int8" && !dynamic_)
      out_scale_ = scale_value(st.number("out_scale"), "layernorm", "attrs['out_scale']");
  }

  void run(const std::vector<const Buffer*>& in, std::vector<Buffer>& out) const override {
    const Buffer& x = *in.at(0);
    const bool int8_in = x.dtype == DType::kInt8;
    require(int8_in || x.dtype == DType::kFloat32, "layernorm", "x must be float32 or int8");
    require(in.size() == (int8_in && dynamic_ ? 2u : 1u), "layernorm", "wrong number of inputs");
    float si = 1.0f;
    if (int8_in) {
      if (dynamic_) {
        si = scale_buffer(*in[1], "layernorm", "x_scale");
      } else {
        require(in_scale_ > 0.0f, "layernorm", "in_scale is required for int8 x");
        si = in_scale_;
      }
    }
    require(!x.shape.empty(), "layernorm", "x must have at least one dimension");
    const int64_t C = x.shape.back();
    require(C >= 1 && C <= layernorm::kMaxC && C == static_cast<int64_t>(gamma_.size()), "layernorm",
            "x's last dimension must equal gamma's length");
    const size_t rows = static_cast<size_t>(x.count() / C);
    const int c = static_cast<int>(C);
    const bool to_int8 = out_ == "int8";
    std::vector<unsigned char> finite(rows, 1);
    Buffer yf = Buffer::allocate(DType::kFloat32, x.shape);
    float* y = yf.mutable_data<float>();
    layernorm_rows(x.ptr, int8_in, si, eps_, gamma_.data(), beta_.data(), rows, c, y,
                   to_int8 ? finite.data() : nullptr);
    if (!to_int8) {
      out.push_back(std::move(yf));
      return;
    }
    const float so = dynamic_ ? layernorm_dynamic_out_scale(y, rows, c, finite.data()) : out_scale_;
    Buffer q = Buffer::allocate(DType::kInt8, x.shape);
    quantize_static(y, rows * static_cast<size_t>(c), so, q.mutable_data<int8_t>());
    out.push_back(std::move(q));
    if (dynamic_) {
      Buffer s = Buffer::allocate(DType::kFloat32, {1});
      s.mutable_data<float>()[0] = so;
      out.push_back(std::move(s));
    }
  }

 private:
  bool dynamic_;
  float eps_ = 1e-5f, in_scale_ = 0.0f, out_scale_ = 0.0f;
  std::string out_;
  std::vector<float> gamma_, beta_;
};

// -- softmax ---------------------------------------------------------------------------------
class Softmax : public StageImpl {
 public:
  explicit Softmax(const StageDef& st)
      : dynamic_(st.flag("dynamic")), causal_(st.flag("causal")), has_mask_(st.flag("has_mask")) {
    if (!dynamic_) in_scale_ = real_scale(st, "in_scale");
    scale_ = st.attr("scale") == nullptr ? 1.0 : real_scale(st, "scale");
    past_len_ = past_len_attr(st, &past_given_);
  }

  void run(const std::vector<const Buffer*>& in, std::vector<Buffer>& out) const override {
    require(in.size() == 1u + dynamic_ + has_mask_, "softmax", "wrong number of inputs");
    const Buffer& x = input_of(in, 0, DType::kInt8, "softmax", "x");
    require(!x.shape.empty(), "softmax", "x needs at least one dimension");
    double si = in_scale_;
    if (dynamic_) si = static_cast<double>(scale_buffer(*in[1], "softmax", "x_scale"));
    SoftmaxArgs a;
    a.x = x.data<int8_t>();
    a.n = x.shape.back();
    a.rows = a.n ? x.count() / a.n : 0;
    a.logit_rq = logit_requant(si * scale_, "softmax");
    a.causal = causal_;
    const int64_t ql = x.shape.size() >= 2 ? x.shape[x.shape.size() - 2] : 1;
    a.query_len = ql < 1 ? 1 : ql;
    a.past_len = causal_ ? (past_given_ ? past_len_ : std::max<int64_t>(a.n - ql, 0)) : 0;
    std::vector<int64_t> offsets;
    if (has_mask_) {
      const Buffer& m = input_of(in, in.size() - 1, DType::kFloat32, "softmax", "mask");
      const std::vector<int64_t> strides = broadcast_strides(m.shape, x.shape, "softmax");
      offsets = mask_row_offsets(x.shape, strides);
      a.mask = m.data<float>();
      a.mask_row_offset = offsets.data();
      a.mask_col_stride = strides.back();
    }
    Buffer p = Buffer::allocate(DType::kInt8, x.shape);
    a.out = p.mutable_data<int8_t>();
    softmax_int8(a);
    out.push_back(std::move(p));
    if (dynamic_) {
      Buffer s = Buffer::allocate(DType::kFloat32, {1});
      s.mutable_data<float>()[0] = kProbScale;
      out.push_back(std::move(s));
    }
  }

 private:
  bool dynamic_, causal_, has_mask_, past_given_ = false;
  double in_scale_ = 1.0, scale_ = 1.0;
  int64_t past_len_ = 0;
};

// -- attention -------------------------------------------------------------------------------
bool holds_int8_min(const Buffer& b) {
  return has_int8_min(b.data<int8_t>(), static_cast<size_t>(b.count()));
}

class Attention : public StageImpl {
 public:
  explicit Attention(const StageDef& st)
      : dynamic_(st.flag("dynamic")), causal_(st.flag("causal")), has_mask_(st.flag("has_mask")) {
    out_ = st.string_or("out", "float32");
    if (out_ != "float32" && out_ != "int8")
      throw UnsupportedStage("XDNA stage attention: attrs['out'] must be float32 or int8");
    heads_ = static_cast<int64_t>(st.number("num_heads"));
    softmax_scale_ = real_scale(st, "softmax_scale");
    past_len_ = past_len_attr(st, &past_given_);
    if (!dynamic_) {
      qs_ = real_scale(st, "q_scale");
      ks_ = real_scale(st, "k_scale");
      vs_ = real_scale(st, "v_scale");
      if (out_ == "int8") os_ = real_scale(st, "out_scale");
    }
  }

  void run(const std::vector<const Buffer*>& in, std::vector<Buffer>& out) const override {
    const size_t per = dynamic_ ? 2 : 1;
    require(in.size() == 3 * per + has_mask_, "attention", "wrong number of inputs");
    const Buffer& q = input_of(in, 0, DType::kInt8, "attention", "q");
    const Buffer& k = input_of(in, per, DType::kInt8, "attention", "k");
    const Buffer& v = input_of(in, 2 * per, DType::kInt8, "attention", "v");
    double qs = qs_, ks = ks_, vs = vs_, os = os_;
    if (dynamic_) {
      qs = scale_buffer(*in[1], "attention", "q_scale");
      ks = scale_buffer(*in[3], "attention", "k_scale");
      vs = scale_buffer(*in[5], "attention", "v_scale");
      os = vs;
    }
    require(q.shape.size() == 3 && k.shape.size() == 3 && v.shape.size() == 3, "attention",
            "q, k, v must be 3-D [B, T, H*Dh]");
    const int64_t B = q.shape[0], tq = q.shape[1], hd = q.shape[2], tk = k.shape[1];
    require(k.shape[0] == B && v.shape[0] == B && k.shape[2] == hd && v.shape[2] == hd && v.shape[1] == tk,
            "attention", "q, k, v shapes do not match");
    require(heads_ >= 1 && hd % heads_ == 0, "attention", "num_heads must divide H*Dh");
    const int64_t dh = hd / heads_;
    require(dh <= attention::kMaxHeadDim, "attention", "head dim too large");
    require(tk <= kMaxKeys, "attention", "k has too many keys");
    require(!holds_int8_min(k) && !holds_int8_min(v), "attention", "k and v must lie in [-127, 127]");
    AttentionArgs a;
    a.q = q.data<int8_t>();
    a.k = k.data<int8_t>();
    a.v = v.data<int8_t>();
    a.batch = B;
    a.q_len = tq;
    a.k_len = tk;
    a.heads = heads_;
    a.head_dim = dh;
    a.logit_rq = logit_requant(qs * ks * softmax_scale_, "attention");
    a.causal = causal_;
    a.past_len = causal_ ? (past_given_ ? past_len_ : std::max<int64_t>(tk - tq, 0)) : 0;
    if (has_mask_) {
      const Buffer& m = input_of(in, in.size() - 1, DType::kFloat32, "attention", "mask");
      const std::vector<int64_t> strides = broadcast_strides(m.shape, {B, heads_, tq, tk}, "attention");
      for (int i = 0; i < 4; ++i) a.mask_strides[i] = strides[i];
      a.mask = m.data<float>();
    }
    a.out_float = out_ == "float32";
    if (a.out_float) {
      Buffer o = Buffer::allocate(DType::kFloat32, {B, tq, hd});
      a.out_f32 = o.mutable_data<float>();
      a.v_scale = static_cast<float>(vs);
      attention_int8(a);
      out.push_back(std::move(o));
      return;
    }
    a.out_rq = make_requant(vs / os);
    Buffer o = Buffer::allocate(DType::kInt8, {B, tq, hd});
    a.out_i8 = o.mutable_data<int8_t>();
    attention_int8(a);
    out.push_back(std::move(o));
    if (dynamic_) {
      Buffer s = Buffer::allocate(DType::kFloat32, {1});
      s.mutable_data<float>()[0] = static_cast<float>(os);
      out.push_back(std::move(s));
    }
  }

 private:
  bool dynamic_, causal_, has_mask_, past_given_ = false;
  std::string out_;
  int64_t heads_ = 1, past_len_ = 0;
  double softmax_scale_ = 1.0, qs_ = 1.0, ks_ = 1.0, vs_ = 1.0, os_ = 1.0;
};

}  // namespace

std::unique_ptr<StageImpl> make_layernorm(const StageDef& st) { return std::make_unique<LayerNorm>(st); }
std::unique_ptr<StageImpl> make_softmax(const StageDef& st) { return std::make_unique<Softmax>(st); }
std::unique_ptr<StageImpl> make_attention(const StageDef& st) { return std::make_unique<Attention>(st); }

}  // namespace xdna::ep
