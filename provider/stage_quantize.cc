// quantize / dequantize stages (kernels/STAGES.md; Python: kernel_specs/quantize.py).
#include <cmath>
#include <memory>

#include "quantize.h"
#include "runner.h"
#include "stages.h"

namespace xdna::ep {
namespace {

Buffer quantize_with(const Buffer& x, float scale, const std::string& kernel) {
  Buffer q = Buffer::allocate(DType::kInt8, x.shape);
  const bool ok = quantize_static(x.data<float>(), static_cast<size_t>(x.count()), scale,
                                  q.mutable_data<int8_t>());
  require(ok, kernel, "x contains NaN, which has no int8 value");
  return q;
}

class Quantize : public StageImpl {
 public:
  explicit Quantize(const StageDef& st) : dynamic_(st.flag("dynamic")) {
    if (!dynamic_) {
      scale_ = scale_value(st.number("out_scale"), "quantize", "attrs['out_scale']");
      return;
    }
    // kernel_version 2: a GELU input's range is capped at max(max x, neg_limit)
    const double lim = st.number_or("neg_limit", 0.0);
    neg_limit_ = static_cast<float>(lim);
    if (!(lim >= 0.0) || !std::isfinite(neg_limit_))
      throw PayloadError("XDNA stage quantize: attrs['neg_limit'] must be a finite float32 >= 0");
  }
  void run(const std::vector<const Buffer*>& in, std::vector<Buffer>& out) const override {
    require(in.size() == 1, "quantize", "expects 1 input");
    const Buffer& x = input_of(in, 0, DType::kFloat32, "quantize", "x");
    require(x.count() > 0, "quantize", "x is empty");
    if (!dynamic_) {
      out.push_back(quantize_with(x, scale_, "quantize"));
      return;
    }
    bool finite = true;
    const float s =
        dynamic_quantize_scale(x.data<float>(), static_cast<size_t>(x.count()), neg_limit_, &finite);
    require(finite, "quantize", "x contains NaN or inf: no dynamic int8 scale exists");
    out.push_back(quantize_with(x, s, "quantize"));
    Buffer sb = Buffer::allocate(DType::kFloat32, {1});
    sb.mutable_data<float>()[0] = s;
    out.push_back(std::move(sb));
  }

 private:
  bool dynamic_;
  float scale_ = 1.0f;
  float neg_limit_ = 0.0f;
};

class Dequantize : public StageImpl {
 public:
  explicit Dequantize(const StageDef& st) : dynamic_(st.flag("dynamic")) {
    if (!dynamic_) scale_ = scale_value(st.number("in_scale"), "dequantize", "attrs['in_scale']");
  }
  void run(const std::vector<const Buffer*>& in, std::vector<Buffer>& out) const override {
    require(in.size() == (dynamic_ ? 2u : 1u), "dequantize", "wrong number of inputs");
    const Buffer& q = input_of(in, 0, DType::kInt8, "dequantize", "q");
    require(q.count() > 0, "dequantize", "q is empty");
    const float s = dynamic_ ? scale_buffer(*in[1], "dequantize", "q_scale") : scale_;
    Buffer x = Buffer::allocate(DType::kFloat32, q.shape);
    dequantize(q.data<int8_t>(), static_cast<size_t>(q.count()), s, x.mutable_data<float>());
    out.push_back(std::move(x));
  }

 private:
  bool dynamic_;
  float scale_ = 1.0f;
};

}  // namespace

std::unique_ptr<StageImpl> make_quantize(const StageDef& st) { return std::make_unique<Quantize>(st); }
std::unique_ptr<StageImpl> make_dequantize(const StageDef& st) {
  return std::make_unique<Dequantize>(st);
}

}  // namespace xdna::ep
