// conv1d stage (kernels/STAGES.md; Python: kernel_specs/conv1d.py), prepared
// from the device blobs [weight int8 [Cout, Cin*Kw], w_scale, bias, (static)
// scalars {in_scale, 1/in_scale}]; Cin comes from x at run time.
#include <cmath>
#include <memory>

#include "conv1d/conv1d.h"
#include "conv1d_host.h"
#include "runner.h"
#include "stages.h"

namespace xdna::ep {
namespace {

class Conv1d : public StageImpl {
 public:
  explicit Conv1d(const StageDef& st) : dynamic_(st.flag("dynamic")) {
    if (st.string_or("out", "float32") != "float32")
      throw UnsupportedStage("XDNA stage conv1d: attrs['out'] must be float32");
    if (st.const_form != 1) throw UnsupportedStage("XDNA stage conv1d: constants must be device blobs");
    const Tensor& w = st.constant("#0");
    const Tensor& ws = st.constant("#1");
    const Tensor& b = st.constant("#2");
    if (w.dtype != DType::kInt8 || w.shape.size() != 2 || ws.dtype != DType::kFloat32 ||
        b.dtype != DType::kFloat32 || ws.count() != w.shape[0] || b.count() != w.shape[0])
      throw PayloadError("XDNA stage conv1d: device constants have the wrong types or shapes");
    cout_ = static_cast<int>(w.shape[0]);
    k_ = static_cast<int>(w.shape[1]);
    weight_.assign(w.data<int8_t>(), w.data<int8_t>() + w.count());
    for (int8_t x : weight_)
      if (x == -128) throw PayloadError("XDNA stage conv1d: weight values must lie in [-127, 127]");
    w_scale_.assign(ws.data<float>(), ws.data<float>() + ws.count());
    bias_.assign(b.data<float>(), b.data<float>() + b.count());
    stride_ = static_cast<int>(st.number_or("stride", 1));
    pad_ = static_cast<int>(st.number_or("pad", 0));
    if (stride_ < 1 || pad_ < 0) throw UnsupportedStage("XDNA stage conv1d: stride >= 1, pad >= 0");
    if (!dynamic_) {
      in_scale_ = scale_value(st.number("in_scale"), "conv1d", "attrs['in_scale']");
      const Tensor* sc = st.constant_opt("#3");
      if (sc == nullptr || sc->dtype != DType::kFloat32 || sc->count() != 2 ||
          sc->data<float>()[0] != in_scale_)
        throw PayloadError("XDNA stage conv1d: the scalar block disagrees with attrs['in_scale']");
    }
  }

  void run(const std::vector<const Buffer*>& in, std::vector<Buffer>& out) const override {
    require(in.size() == 1, "conv1d", "expects 1 input");
    const Buffer& x = input_of(in, 0, DType::kFloat32, "conv1d", "x");
    require(x.shape.size() == 3, "conv1d", "x must be float32 [B, Cin, T]");
    Conv c{};
    c.B = static_cast<int>(x.shape[0]);
    c.Cin = static_cast<int>(x.shape[1]);
    c.T = static_cast<int>(x.shape[2]);
    require(c.Cin >= 1 && k_ % c.Cin == 0, "conv1d", "x's Cin does not divide the weight's Cin*Kw");
    c.Cout = cout_;
    c.Kw = k_ / c.Cin;
    c.stride = stride_;
    c.pad = pad_;
    c.Tout = conv1d::out_length(c.T, c.Kw, stride_, pad_);
    require(c.Tout >= 1, "conv1d", "x is too short for the kernel width");
    Buffer y = Buffer::allocate(DType::kFloat32, {c.B, c.Cout, c.Tout});
    if (c.B == 0) {
      out.push_back(std::move(y));
      return;
    }
    const float* xp = x.data<float>();
    const size_t n = static_cast<size_t>(x.count());
    for (size_t i = 0; i < n; ++i) require(std::isfinite(xp[i]), "conv1d", "x contains NaN or Inf");
    const float si = dynamic_ ? conv1d_dynamic_in_scale(xp, n) : in_scale_;
    const bool ok = std::isfinite(si) &&
                    conv1d_run(c, xp, si, weight_.data(), w_scale_.data(), bias_.data(), y.mutable_data<float>());
    require(ok, "conv1d", "x contains NaN or Inf");
    out.push_back(std::move(y));
  }

 private:
  bool dynamic_;
  int cout_ = 0, k_ = 0, stride_ = 1, pad_ = 0;
  float in_scale_ = 1.0f;
  std::vector<int8_t> weight_;
  std::vector<float> w_scale_, bias_;
};

}  // namespace

std::unique_ptr<StageImpl> make_conv1d(const StageDef& st) { return std::make_unique<Conv1d>(st); }

}  // namespace xdna::ep
