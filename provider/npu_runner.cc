// NpuProgram: payload launches -> libxdna_ep_npu.so (npu_runner.h).
#include "npu_runner.h"

#include <cstring>
#include <stdexcept>
#include <unordered_map>

namespace xdna::ep {
namespace {

constexpr const char* kScratchPrefix = "#scratch/";  // runtime/layout.py SCRATCH_PREFIX

int64_t product(const std::vector<int64_t>& v, size_t from = 0, size_t to = SIZE_MAX) {
  int64_t n = 1;
  for (size_t i = from; i < v.size() && i < to; ++i) n *= v[i];
  return n;
}

// Calls fn(buffer element offset, BO byte offset, elements) for each contiguous row
// of the slot's buffer (runtime/layout.py Slot.window: the buffer folded to the
// frame's rank, placed at `origin` in a row-major array of shape `frame`).
template <class Fn>
void for_each_row(const SlotDef& s, Fn fn) {
  const size_t item = dtype_size(s.dtype);
  if (s.frame.empty()) {
    fn(0, s.offset, static_cast<size_t>(product(s.shape)));
    return;
  }
  const size_t k = s.frame.size(), r = s.shape.size();
  if (r < k) throw std::runtime_error("slot '" + s.name + "' has a rank below its frame's");
  std::vector<int64_t> folded(k);
  folded[0] = product(s.shape, 0, r - k + 1);
  for (size_t a = 1; a < k; ++a) folded[a] = s.shape[r - k + a];
  for (size_t a = 0; a < k; ++a)
    if (s.origin[a] + folded[a] > s.frame[a])
      throw std::runtime_error("slot '" + s.name + "' does not fit its frame");
  std::vector<int64_t> stride(k, 1);
  for (size_t a = k - 1; a > 0; --a) stride[a - 1] = stride[a] * s.frame[a];
  const int64_t row = folded[k - 1];
  const int64_t rows = product(folded, 0, k - 1);
  std::vector<int64_t> idx(k, 0);
  for (int64_t n = 0; n < rows; ++n) {
    int64_t dst = s.origin[k - 1];
    for (size_t a = 0; a + 1 < k; ++a) dst += (s.origin[a] + idx[a]) * stride[a];
    fn(static_cast<size_t>(n * row), s.offset + static_cast<size_t>(dst) * item, static_cast<size_t>(row));
    for (size_t a = k - 1; a-- > 0;) {  // next index over the leading k-1 axes
      if (++idx[a] < folded[a]) break;
      idx[a] = 0;
    }
  }
}

// A fused design's dynamic form writes its reducers' params {scale, 1/scale, flag, 0}
// to the scratch slot "<prefix><design>/scales" (kernels/fused/scratch.py SCALES): a set
// flag means a dynamic quantize's input held NaN or inf. That is the data's fault, not
// the device's: the quantize contract's error, never a fallback (runtime/layout.py
// check_scale_flags says the same on the Python path).
void check_scale_flags(const LaunchDef& l, const LaunchImage& im, const std::vector<uint8_t>& out) {
  const std::string name = std::string(kScratchPrefix) + l.design + "/scales";
  for (const SlotDef& s : im.out_slots) {
    if (s.name != name) continue;
    for (uint64_t at = 0; at + 16 <= s.nbytes; at += 16) {
      float flag = 0.0f;
      std::memcpy(&flag, out.data() + s.offset + at + 8, sizeof flag);
      if (flag != 0.0f)
        throw std::invalid_argument(
            "x contains NaN or inf: no dynamic int8 scale exists (dynamic quantize #" +
            std::to_string(at / 16) + " of design '" + l.design + "', scale reduced on the NPU)");
    }
  }
}

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

void pack_slot(const SlotDef& slot, const Buffer& b, std::vector<uint8_t>& bo) {
  if (b.dtype != slot.dtype || b.shape != slot.shape)
    throw std::runtime_error("buffer '" + slot.name + "' does not match its NPU slot (dtype " +
                             dtype_name(b.dtype) + " vs " + dtype_name(slot.dtype) + ")");
  const size_t item = dtype_size(slot.dtype);
  for_each_row(slot, [&](size_t src, size_t dst, size_t n) {
    std::memcpy(bo.data() + dst, b.ptr + src * item, n * item);
  });
}

Buffer unpack_slot(const SlotDef& slot, const std::vector<uint8_t>& bo) {
  Buffer b = Buffer::allocate(slot.dtype, slot.shape);
  const size_t item = dtype_size(slot.dtype);
  for_each_row(slot, [&](size_t dst, size_t src, size_t n) {
    std::memcpy(b.mutable_data<uint8_t>() + dst * item, bo.data() + src, n * item);
  });
  return b;
}

std::string npu_refusal(const Payload& p) {
  for (size_t i = 0; i < p.launches.size(); ++i) {
    const LaunchDef& l = p.launches[i];
    const std::string where = "program '" + p.name + "', launch " + std::to_string(i) +
                              " (design '" + l.design + "', kernels [" + joined(l.kernels) + "])";
    if (l.image_kind == LaunchDef::Image::kNone)
      return where + " has no NPU image: " + l.why +
             ". The NPU backend needs concrete shapes: compile with concrete dims "
             "(xdna-ep compile --dims NAME=N,...)";
    if (l.image_kind == LaunchDef::Image::kRefused) return where + " cannot run on the NPU: " + l.why;
    if (!l.in_manifest)
      return where + ": design '" + l.design + "' was not in the kernel manifest the model was "
             "compiled with, so its xclbin is unknown";
  }
  return "";
}

NpuProgram::NpuProgram(const Payload& payload, std::shared_ptr<NpuDevice> device)
    : payload_(payload), device_(std::move(device)) {
  const std::string refusal = npu_refusal(payload_);
  if (!refusal.empty()) throw NpuUnavailable(refusal);
  std::vector<std::string> kernels;
  std::vector<XdnaNpuLaunch> launches;
  for (const LaunchDef& l : payload_.launches) kernels.push_back(joined(l.kernels));
  for (size_t i = 0; i < payload_.launches.size(); ++i) {
    const LaunchDef& l = payload_.launches[i];
    const LaunchImage& im = l.image;
    XdnaNpuLaunch c{};
    c.design = l.design.c_str();
    c.kernels = kernels[i].c_str();
    c.xclbin = l.xclbin.c_str();
    c.insts = l.insts.c_str();
    c.xrt_kernel = l.xrt_kernel.c_str();
    c.weights = im.weights.data();
    c.weights_size = im.weights.size();
    c.params = im.params.data();
    c.params_size = im.params.size();
    c.in_size = im.in_size;
    c.out_size = im.out_size;
    c.zero_out = im.zero_out ? 1 : 0;
    launches.push_back(c);
  }
  const std::vector<std::string> dirs = xclbin_search_dirs();
  std::vector<const char*> cdirs;
  for (const auto& d : dirs) cdirs.push_back(d.c_str());
  handle_ = device_->api().load(device_->handle(), payload_.name.c_str(), launches.data(),
                                launches.size(), cdirs.data(), cdirs.size());
  if (handle_ == nullptr) throw NpuUnavailable(device_->last_error());
}

NpuProgram::~NpuProgram() {
  if (handle_ != nullptr) device_->api().unload(handle_);
}

std::string shape_text(const std::vector<IoSpec>& specs, const std::vector<std::vector<int64_t>>& shapes) {
  std::string out;
  for (size_t i = 0; i < specs.size() && i < shapes.size(); ++i) {
    out += (out.empty() ? "" : ", ") + specs[i].name + "[";
    for (size_t a = 0; a < shapes[i].size(); ++a)
      out += (a ? "," : "") + std::to_string(shapes[i][a]);
    out += "]";
  }
  return out;
}

namespace {
// The input shapes the image is for: the recorded ones, else the declared (concrete) ones.
std::vector<int64_t> image_shape(const Payload& p, size_t i) {
  if (!p.image_shapes.empty()) return p.image_shapes[i];
  std::vector<int64_t> want;
  for (const Dim& d : p.inputs[i].shape) want.push_back(d.value);
  return want;
}
}  // namespace

bool NpuProgram::fits(const std::vector<Buffer>& inputs) const {
  if (inputs.size() != payload_.inputs.size()) return false;
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].shape != image_shape(payload_, i)) return false;
  return true;
}

std::string NpuProgram::image_shape_text() const {
  std::vector<std::vector<int64_t>> shapes;
  for (size_t i = 0; i < payload_.inputs.size(); ++i) shapes.push_back(image_shape(payload_, i));
  return shape_text(payload_.inputs, shapes);
}

std::vector<Buffer> NpuProgram::run(const std::vector<Buffer>& inputs) const {
  if (inputs.size() != payload_.inputs.size())
    throw NpuRunError("program " + payload_.name + ": got " + std::to_string(inputs.size()) +
                      " inputs, expects " + std::to_string(payload_.inputs.size()), false);
  std::unordered_map<std::string, Buffer> env;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const IoSpec& spec = payload_.inputs[i];
    if (inputs[i].dtype != spec.dtype || inputs[i].shape != image_shape(payload_, i))
      throw NpuRunError("program " + payload_.name + ": input '" + spec.name +
                        "' does not have the dtype and shape it was compiled for", false);
    env[spec.name] = inputs[i];
  }
  for (size_t i = 0; i < payload_.launches.size(); ++i) {
    const LaunchDef& l = payload_.launches[i];
    const LaunchImage& im = l.image;
    std::vector<uint8_t> in(im.in_size, 0), out(im.out_size, 0);
    for (const SlotDef& s : im.in_slots) {
      auto it = env.find(s.name);
      if (it == env.end())
        throw NpuRunError("program " + payload_.name + ", launch " + std::to_string(i) +
                          ": buffer '" + s.name + "' is not produced before it", false);
      pack_slot(s, it->second, in);
    }
    const int status = device_->api().run(handle_, i, in.data(), in.size(), out.data(), out.size());
    if (status != XDNA_NPU_OK) throw NpuRunError(device_->last_error(), status == XDNA_NPU_BROKEN);
    check_scale_flags(l, im, out);
    for (const SlotDef& s : im.out_slots)
      if (s.name.compare(0, std::strlen(kScratchPrefix), kScratchPrefix) != 0)
        env[s.name] = unpack_slot(s, out);
  }
  std::vector<Buffer> result;
  for (const IoSpec& spec : payload_.outputs) {
    auto it = env.find(spec.name);
    if (it == env.end())
      throw NpuRunError("program " + payload_.name + ": output '" + spec.name +
                        "' is not written by any launch", false);
    result.push_back(it->second);
  }
  return result;
}

}  // namespace xdna::ep
