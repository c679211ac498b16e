// matmul stage (kernels/STAGES.md; Python: kernel_specs/matmul.py). Prepared
// from the kernel's device_constants blobs, exactly like prepare_device():
// [0] int8 weight [Kp, Np], [1] epilogue words, [2] int32 (K, N).
#include <memory>

#include "int8_gemm_packed.h"
#include "packed_weights.h"
#include "quantize.h"
#include "runner.h"
#include "stages.h"

namespace xdna::ep {
namespace {

class Matmul : public StageImpl {
 public:
  explicit Matmul(const StageDef& st) {
    if (st.const_form != 1)
      throw UnsupportedStage("XDNA stage matmul: constants must be device blobs (const form 1)");
    const Tensor& w = st.constant("#0");
    const Tensor& words = st.constant("#1");
    const Tensor& dims = st.constant("#2");
    if (w.dtype != DType::kInt8 || w.shape.size() != 2 || dims.dtype != DType::kInt32 ||
        dims.count() != 2)
      throw PayloadError("XDNA stage matmul: device constants have the wrong types or shapes");
    K_ = dims.data<int32_t>()[0];
    N_ = dims.data<int32_t>()[1];
    const int64_t Kp = w.shape[0], Np = w.shape[1];
    if (!(K_ > 0 && K_ <= Kp && N_ > 0 && N_ <= Np) || K_ > kMaxK)
      throw PayloadError("XDNA stage matmul: dims (K, N) do not fit the padded weight");
    dynamic_ = st.flag("dynamic");
    const std::string out = st.string_or("out", dynamic_ ? "float32" : "int8");
    if (out != "int8" && out != "float32")
      throw UnsupportedStage("XDNA stage matmul: attrs['out'] must be int8 or float32");
    int8_out_ = out == "int8";
    if (int8_out_ && dynamic_)
      throw UnsupportedStage("XDNA stage matmul: dynamic matmul supports only out='float32'");
    if (!dynamic_) in_scale_ = scale_value(st.number("in_scale"), "matmul", "attrs['in_scale']");
    if (const Attr* split = st.attr("split")) {
      if (split->kind != Attr::Kind::kInts) throw PayloadError("XDNA stage matmul: split must be ints");
      bounds_.push_back(0);
      for (int64_t n : split->ints) {
        if (n <= 0) throw PayloadError("XDNA stage matmul: split widths must be > 0");
        bounds_.push_back(bounds_.back() + static_cast<int>(n));
      }
      if (bounds_.back() != N_) throw PayloadError("XDNA stage matmul: split must sum to N");
    }
    // unpadded weight -> packed layout (same call as the pybind matmul_pack)
    const int8_t* wp = w.data<int8_t>();
    for (int k = 0; k < K_; ++k)
      if (has_int8_min(wp + k * Np, static_cast<size_t>(N_)))
        throw PayloadError("XDNA stage matmul: weight must lie in [-127, 127]");
    pack_weights(K_, N_, wp, Np, &packed_);
    if (int8_out_) {
      if (words.dtype != DType::kInt32 || words.shape != std::vector<int64_t>{3, Np})
        throw PayloadError("XDNA stage matmul: params must be int32 [3, Np]");
      const int32_t* p = words.data<int32_t>();
      mult_.assign(p, p + N_);
      shift_.assign(p + Np, p + Np + N_);
      bias_i32_.assign(p + 2 * Np, p + 2 * Np + N_);
      for (int n = 0; n < N_; ++n)
        if (mult_[n] < 0 || shift_[n] < 1 || shift_[n] > 62 || bias_i32_[n] < -kMaxBiasI32 ||
            bias_i32_[n] > kMaxBiasI32)
          throw PayloadError("XDNA stage matmul: mult/shift/bias out of range");
    } else {
      if (words.dtype != DType::kFloat32 || words.shape != std::vector<int64_t>{2, Np})
        throw PayloadError("XDNA stage matmul: params must be float32 [2, Np]");
      const float* p = words.data<float>();
      row0_.assign(p, p + N_);  // scale (static) or w_scale (dynamic)
      bias_f32_.assign(p + Np, p + Np + N_);
    }
  }

  void run(const std::vector<const Buffer*>& in, std::vector<Buffer>& out) const override {
    require(in.size() == (dynamic_ ? 2u : 1u), "matmul", "wrong number of inputs");
    const Buffer& a_in = *in[0];
    require(!a_in.shape.empty() && a_in.shape.back() == K_, "matmul",
            "a's last dim must equal the weight's K = " + std::to_string(K_));
    require(a_in.count() > 0, "matmul", "a is empty");
    Buffer a_q;
    const int8_t* a = nullptr;
    if (a_in.dtype == DType::kFloat32) {
      require(!dynamic_, "matmul", "a must be int8 in dynamic mode");
      a_q = Buffer::allocate(DType::kInt8, a_in.shape);
      const bool ok = quantize_static(a_in.data<float>(), static_cast<size_t>(a_in.count()),
                                      in_scale_, a_q.mutable_data<int8_t>());
      require(ok, "matmul", "a contains NaN, which has no int8 value");
      a = a_q.data<int8_t>();
    } else {
      require(a_in.dtype == DType::kInt8, "matmul", "a must be int8 or float32");
      a = a_in.data<int8_t>();
    }
    const int64_t M = a_in.count() / K_;
    require(M <= (int64_t{1} << 30), "matmul", "M is too large");
    std::vector<int64_t> lead(a_in.shape.begin(), a_in.shape.end() - 1);

    Epilogue epi;
    std::vector<float> dyn_scale;
    if (int8_out_) {
      epi.kind = EpilogueKind::kRequantInt8;
      epi.mult = mult_.data();
      epi.shift = shift_.data();
      epi.bias_i32 = bias_i32_.data();
    } else {
      epi.kind = EpilogueKind::kDequantF32;
      if (dynamic_) {
        const float s = scale_buffer(*in[1], "matmul", "a_scale");
        dyn_scale.resize(N_);
        for (int n = 0; n < N_; ++n) dyn_scale[n] = s * row0_[n];
        epi.scale = dyn_scale.data();
      } else {
        epi.scale = row0_.data();
      }
      epi.bias_f32 = bias_f32_.data();
    }
    const DType odt = int8_out_ ? DType::kInt8 : DType::kFloat32;
    std::vector<void*> ptrs;
    if (bounds_.empty()) {
      auto shape = lead;
      shape.push_back(N_);
      out.push_back(Buffer::allocate(odt, shape));
      epi.out = out.back().owned->data();
      epi.ldo = N_;
    } else {
      for (size_t j = 0; j + 1 < bounds_.size(); ++j) {
        auto shape = lead;
        shape.push_back(bounds_[j + 1] - bounds_[j]);
        out.push_back(Buffer::allocate(odt, shape));
      }
      for (auto& b : out) ptrs.push_back(b.owned->data());
      epi.nsplit = static_cast<int>(ptrs.size());
      epi.split_start = bounds_.data();
      epi.split_out = ptrs.data();
    }
    gemm_packed_parallel(packed_.view(), a, K_, static_cast<int>(M), epi);
  }

 private:
  int K_ = 0, N_ = 0;
  bool dynamic_ = false, int8_out_ = false;
  float in_scale_ = 1.0f;
  std::vector<int> bounds_;
  PackedWeights packed_;
  std::vector<int32_t> mult_, shift_, bias_i32_;
  std::vector<float> row0_, bias_f32_;
};

}  // namespace

std::unique_ptr<StageImpl> make_matmul(const StageDef& st) { return std::make_unique<Matmul>(st); }

}  // namespace xdna::ep
