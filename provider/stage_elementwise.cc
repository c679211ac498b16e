// gelu and add stages (kernels/STAGES.md; Python: kernel_specs/gelu.py, add.py).
// The arithmetic is the kernels' own headers (kernels/gelu/gelu.h, add/add.h);
// the loops around it (thread pool, broadcast walk, dynamic table) are the
// kernel library's, shared with the pybind module (gelu_host.h, add_host.h).
#include <algorithm>
#include <memory>

#include "add/add.h"
#include "add_host.h"
#include "gelu/gelu.h"
#include "gelu_host.h"
#include "runner.h"
#include "stages.h"

namespace xdna::ep {
namespace {

bool parse_approximate(const StageDef& st) {
  const std::string a = st.string_or("approximate", "none");
  if (a != "none" && a != "tanh")
    throw UnsupportedStage("XDNA stage gelu: attrs['approximate'] must be none or tanh");
  return a == "tanh";
}

Buffer apply_table(const Buffer& x, const int8_t* table) {
  Buffer y = Buffer::allocate(DType::kInt8, x.shape);
  gelu_apply(x.data<int8_t>(), y.mutable_data<int8_t>(), static_cast<size_t>(x.count()), table);
  return y;
}

class Gelu : public StageImpl {
 public:
  explicit Gelu(const StageDef& st) : dynamic_(st.flag("dynamic")), tanh_(parse_approximate(st)) {
    if (dynamic_) return;  // the table is built per call from the run-time scale
    if (st.const_form != 1) throw UnsupportedStage("XDNA stage gelu: static table must be a device blob");
    const Tensor& t = st.constant("#0");
    if (t.dtype != DType::kInt8 || t.count() != gelu::kTableSize)
      throw PayloadError("XDNA stage gelu: table must be int8 [256]");
    std::copy(t.data<int8_t>(), t.data<int8_t>() + gelu::kTableSize, table_);
  }
  void run(const std::vector<const Buffer*>& in, std::vector<Buffer>& out) const override {
    require(in.size() == (dynamic_ ? 2u : 1u), "gelu", "wrong number of inputs");
    const Buffer& x = input_of(in, 0, DType::kInt8, "gelu", "x");
    if (!dynamic_) {
      out.push_back(apply_table(x, table_));
      return;
    }
    const float si = scale_buffer(*in[1], "gelu", "x_scale");
    require(x.count() > 0, "gelu", "x is empty");
    int8_t table[gelu::kTableSize];  // kernel_version 3: the scale covers the codes present
    const float so =
        gelu_dynamic_table(x.data<int8_t>(), static_cast<size_t>(x.count()), si, tanh_, table);
    out.push_back(apply_table(x, table));
    Buffer s = Buffer::allocate(DType::kFloat32, {1});
    s.mutable_data<float>()[0] = so;
    out.push_back(std::move(s));
  }

 private:
  bool dynamic_, tanh_;
  int8_t table_[gelu::kTableSize] = {};
};

// Elements of b (the repeat period) after checking b's shape is a suffix of a's.
size_t broadcast_period(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  size_t period = 0;
  require(add_broadcast_period(a, b, &period), "add", "b (leading 1s dropped) must have a's shape or a suffix of it");
  return period;
}

Buffer add_f32(const std::vector<int64_t>& shape, const float* a, const float* b,
               const std::vector<int64_t>& bshape) {
  const size_t period = broadcast_period(shape, bshape);
  Buffer c = Buffer::allocate(DType::kFloat32, shape);
  add_f32_broadcast(a, b, c.mutable_data<float>(), static_cast<size_t>(c.count()), period);
  return c;
}

class Add : public StageImpl {
 public:
  explicit Add(const StageDef& st) : dynamic_(st.flag("dynamic")), transpose_a_(st.flag("transpose_a")) {
    if (const Tensor* t = st.constant_opt("#0")) {
      if (t->dtype == DType::kFloat32) {  // constant b (position table), tile padding dropped
        has_table_ = true;
        table_shape_ = t->shape;
        int64_t rows = table_shape_.empty() ? 0 : table_shape_[0];
        if (st.attr("table_rows") != nullptr) {
          rows = static_cast<int64_t>(st.number("table_rows"));
          if (table_shape_.size() != 2 || table_shape_[0] < rows)
            throw PayloadError("XDNA stage add: the table has fewer than table_rows rows");
          table_shape_[0] = rows;
        }
        int64_t n = 1;
        for (int64_t d : table_shape_) n *= d;
        table_.assign(t->data<float>(), t->data<float>() + n);
      } else if (t->dtype != DType::kInt32) {
        throw PayloadError("XDNA stage add: unexpected device constant");
      }
    }
    if (st.attr("a_scale") != nullptr && !dynamic_) {  // static int8
      static_i8_ = true;
      rq_ = add::make_add_requant(scale_value(st.number("a_scale"), "add", "attrs['a_scale']"),
                                  scale_value(st.number("b_scale"), "add", "attrs['b_scale']"),
                                  scale_value(st.number("out_scale"), "add", "attrs['out_scale']"));
      const Tensor* blob = st.constant_opt("#0");
      if (blob == nullptr || blob->dtype != DType::kInt32 || blob->count() != 3 ||
          blob->data<int32_t>()[0] != rq_.ma || blob->data<int32_t>()[1] != rq_.mb ||
          blob->data<int32_t>()[2] != rq_.shift)
        throw PayloadError("XDNA stage add: the requant block disagrees with the stage attrs");
    }
  }

  void run(const std::vector<const Buffer*>& in, std::vector<Buffer>& out) const override {
    if (has_table_ || transpose_a_) {
      require(in.size() == (has_table_ ? 1u : 2u), "add", "wrong number of inputs");
      const Buffer& a = input_of(in, 0, DType::kFloat32, "add", "a");
      const float* bp = has_table_ ? table_.data() : input_of(in, 1, DType::kFloat32, "add", "b").data<float>();
      const std::vector<int64_t>& bshape = has_table_ ? table_shape_ : in[1]->shape;
      if (!transpose_a_) {
        out.push_back(add_f32(a.shape, a.data<float>(), bp, bshape));
        return;
      }
      require(a.shape.size() == 3, "add", "transpose_a needs a [B, C, T]");
      const int64_t B = a.shape[0], C = a.shape[1], T = a.shape[2];
      std::vector<float> at(static_cast<size_t>(a.count()));
      const float* ap = a.data<float>();
      for (int64_t b = 0; b < B; ++b)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t t = 0; t < T; ++t) at[(b * T + t) * C + c] = ap[(b * C + c) * T + t];
      out.push_back(add_f32({B, T, C}, at.data(), bp, bshape));
      return;
    }
    if (in[0]->dtype == DType::kInt8) {
      if (dynamic_) {
        require(in.size() == 4, "add", "int8 dynamic add expects a, a_scale, b, b_scale");
        const float sa = scale_buffer(*in[1], "add", "a_scale");
        const float sb = scale_buffer(*in[3], "add", "b_scale");
        const float so = add::dynamic_out_scale(sa, sb);
        out.push_back(add_i8(*in[0], input_of(in, 2, DType::kInt8, "add", "b"),
                             add::make_add_requant(sa, sb, so)));
        Buffer s = Buffer::allocate(DType::kFloat32, {1});
        s.mutable_data<float>()[0] = so;
        out.push_back(std::move(s));
        return;
      }
      require(static_i8_ && in.size() == 2, "add", "int8 add needs a_scale/b_scale/out_scale and 2 inputs");
      out.push_back(add_i8(*in[0], input_of(in, 1, DType::kInt8, "add", "b"), rq_));
      return;
    }
    require(in.size() == 2, "add", "float32 add expects 2 inputs");
    const Buffer& a = input_of(in, 0, DType::kFloat32, "add", "a");
    const Buffer& b = input_of(in, 1, DType::kFloat32, "add", "b");
    out.push_back(add_f32(a.shape, a.data<float>(), b.data<float>(), b.shape));
  }

 private:
  static Buffer add_i8(const Buffer& a, const Buffer& b, add::AddRequant r) {
    const size_t period = broadcast_period(a.shape, b.shape);
    Buffer c = Buffer::allocate(DType::kInt8, a.shape);
    add_i8_broadcast(a.data<int8_t>(), b.data<int8_t>(), c.mutable_data<int8_t>(),
                     static_cast<size_t>(c.count()), period, r);
    return c;
  }
  bool dynamic_, transpose_a_;
  bool has_table_ = false, static_i8_ = false;
  std::vector<int64_t> table_shape_;
  std::vector<float> table_;
  add::AddRequant rq_{};
};

}  // namespace

std::unique_ptr<StageImpl> make_gelu(const StageDef& st) { return std::make_unique<Gelu>(st); }
std::unique_ptr<StageImpl> make_add(const StageDef& st) { return std::make_unique<Add>(st); }

}  // namespace xdna::ep
