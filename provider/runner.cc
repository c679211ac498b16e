// Program preparation (stage table lookup) and execution (buffers by name).
#include "runner.h"

#include <algorithm>
#include <cmath>
#include <mutex>
#include <unordered_map>

namespace xdna::ep {

int64_t Buffer::count() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

namespace {

// Stage outputs' storage, recycled. Why: a Whisper encoder call allocates ~100
// buffers of 0.5-9 MB; fresh ones cost page faults, the kernel's page zeroing and
// std::vector's own zero fill on every call (~10% of the call on a 2-core host).
// Storage returns here when its last Buffer drops (Program::run frees each
// buffer after its last reader) and is handed out again for the same byte size,
// in this call or the next. Contents are not cleared: every stage writes all of
// its outputs. Bounded: beyond kMaxPooledBytes storage is freed, not kept.
class StoragePool {
 public:
  static StoragePool& get() {
    static StoragePool* pool = new StoragePool;  // never destroyed: Buffers may outlive exit
    return *pool;
  }

  std::shared_ptr<std::vector<uint8_t>> take(size_t n) {
    std::vector<uint8_t>* v = nullptr;
    if (n >= kMinPooledBytes) {
      std::lock_guard<std::mutex> lk(m_);
      auto it = free_.find(n);
      if (it != free_.end() && !it->second.empty()) {
        v = it->second.back();
        it->second.pop_back();
        bytes_ -= n;
      }
    }
    if (v == nullptr) v = new std::vector<uint8_t>(n);
    if (n < kMinPooledBytes) return std::shared_ptr<std::vector<uint8_t>>(v);
    return std::shared_ptr<std::vector<uint8_t>>(v, [](std::vector<uint8_t>* p) { get().give(p); });
  }

 private:
  static constexpr size_t kMinPooledBytes = 64 * 1024;          // malloc's own range below
  static constexpr size_t kMaxPooledBytes = size_t{256} << 20;  // kept at most

  void give(std::vector<uint8_t>* v) {
    {
      std::lock_guard<std::mutex> lk(m_);
      if (bytes_ + v->size() <= kMaxPooledBytes) {
        bytes_ += v->size();
        free_[v->size()].push_back(v);
        return;
      }
    }
    delete v;
  }

  std::mutex m_;
  std::unordered_map<size_t, std::vector<std::vector<uint8_t>*>> free_;
  size_t bytes_ = 0;
};

}  // namespace

Buffer Buffer::allocate(DType dtype, std::vector<int64_t> shape) {
  Buffer b;
  b.dtype = dtype;
  b.shape = std::move(shape);
  b.owned = StoragePool::get().take(b.nbytes());
  b.ptr = b.owned->data();
  return b;
}

Buffer Buffer::borrow(DType dtype, std::vector<int64_t> shape, const void* p) {
  Buffer b;
  b.dtype = dtype;
  b.shape = std::move(shape);
  b.ptr = static_cast<const uint8_t*>(p);
  return b;
}

void require(bool ok, const std::string& kernel, const std::string& what) {
  if (!ok) throw std::runtime_error("XDNA stage " + kernel + ": " + what);
}

const Buffer& input_of(const std::vector<const Buffer*>& in, size_t i, DType dtype,
                       const std::string& kernel, const char* name) {
  require(i < in.size(), kernel, std::string("input ") + name + " is missing");
  require(in[i]->dtype == dtype, kernel,
          std::string("input ") + name + " has dtype " + dtype_name(in[i]->dtype) +
              ", expected " + dtype_name(dtype));
  return *in[i];
}

// The rule of kernel_specs/checks.quantize_scale: finite float32 > 0 whose
// reciprocal is finite.
float scale_value(double v, const std::string& kernel, const std::string& what) {
  const float f = static_cast<float>(v);
  if (!(std::isfinite(v) && f > 0.0f && std::isfinite(1.0f / f)))
    throw UnsupportedStage("XDNA stage " + kernel + ": " + what +
                           " must be a finite float32 > 0 with a finite reciprocal");
  return f;
}

float scale_buffer(const Buffer& b, const std::string& kernel, const char* what) {
  require(b.dtype == DType::kFloat32 && b.count() == 1, kernel,
          std::string(what) + " must be float32 [1]");
  const float f = b.data<float>()[0];
  require(std::isfinite(f) && f > 0.0f && std::isfinite(1.0f / f), kernel,
          std::string(what) + " must be a finite float32 > 0");
  return f;
}

Program::Program(Payload payload) : payload_(std::move(payload)) {
  std::unordered_map<std::string, bool> known;
  for (const auto& t : payload_.inputs) known[t.name] = true;
  for (const StageDef& st : payload_.stages) {
    const StageEntry* entry = nullptr;
    bool name_known = false;
    for (const StageEntry& e : stage_table()) {
      if (st.kernel != e.kernel) continue;
      name_known = true;
      if (e.version == st.kernel_version) entry = &e;
    }
    if (!name_known) {
      std::string names;
      for (const StageEntry& e : stage_table()) names += std::string(names.empty() ? "" : ", ") + e.kernel;
      throw UnsupportedStage("program " + payload_.name + ": stage kind '" + st.kernel +
                             "' is unknown to this XDNA plugin library (it runs: " + names + ")");
    }
    if (entry == nullptr)
      throw UnsupportedStage("program " + payload_.name + ": stage '" + st.kernel +
                             "' has kernel version " + std::to_string(st.kernel_version) +
                             ", which this XDNA plugin library does not implement; recompile "
                             "the model with the matching xdna-ep");
    for (const auto& b : st.inputs)
      if (!known.count(b))
        throw PayloadError("program " + payload_.name + ": stage " + st.kernel + " reads buffer '" +
                           b + "' before it is produced");
    for (const auto& b : st.outputs) known[b] = true;
    stages_.push_back(entry->make(st));
  }
  for (const auto& t : payload_.outputs)
    if (!known.count(t.name))
      throw PayloadError("program " + payload_.name + ": output '" + t.name + "' is never produced");
  // After its last reader, a buffer's storage goes back to the pool (program
  // outputs are kept to the end): the next stages reuse it while it is in cache.
  std::unordered_map<std::string, size_t> last;
  for (size_t s = 0; s < payload_.stages.size(); ++s)
    for (const auto& b : payload_.stages[s].inputs) last[b] = s;
  for (const auto& t : payload_.outputs) last.erase(t.name);
  release_after_.resize(payload_.stages.size());
  for (const auto& [name, s] : last) {
    const auto& written = payload_.stages[s].outputs;  // read and rewritten in place: kept
    if (std::find(written.begin(), written.end(), name) == written.end())
      release_after_[s].push_back(name);
  }
}

std::vector<Buffer> Program::run(const std::vector<Buffer>& inputs) const {
  if (inputs.size() != payload_.inputs.size())
    throw std::runtime_error("program " + payload_.name + ": got " + std::to_string(inputs.size()) +
                             " inputs, expects " + std::to_string(payload_.inputs.size()));
  std::unordered_map<std::string, Buffer> env;
  std::unordered_map<std::string, int64_t> symbols;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const IoSpec& spec = payload_.inputs[i];
    const Buffer& b = inputs[i];
    if (b.dtype != spec.dtype)
      throw std::runtime_error("input '" + spec.name + "' has dtype " + dtype_name(b.dtype) +
                               ", expected " + dtype_name(spec.dtype));
    if (b.shape.size() != spec.shape.size())
      throw std::runtime_error("input '" + spec.name + "' has rank " + std::to_string(b.shape.size()) +
                               ", expected " + std::to_string(spec.shape.size()));
    for (size_t a = 0; a < b.shape.size(); ++a) {
      const Dim& d = spec.shape[a];
      if (d.value >= 0 && d.value != b.shape[a])
        throw std::runtime_error("input '" + spec.name + "' axis " + std::to_string(a) + " is " +
                                 std::to_string(b.shape[a]) + ", expected " + std::to_string(d.value));
      if (d.value < 0 && !d.symbol.empty()) {
        auto [it, fresh] = symbols.emplace(d.symbol, b.shape[a]);
        if (!fresh && it->second != b.shape[a])
          throw std::runtime_error("input '" + spec.name + "' axis " + std::to_string(a) + " (" +
                                   d.symbol + ") is " + std::to_string(b.shape[a]) +
                                   ", another input fixed it to " + std::to_string(it->second));
      }
    }
    env[spec.name] = b;
  }
  std::vector<const Buffer*> in;
  std::vector<Buffer> out;
  for (size_t s = 0; s < stages_.size(); ++s) {
    const StageDef& st = payload_.stages[s];
    in.clear();
    for (const auto& name : st.inputs) in.push_back(&env.at(name));
    out.clear();
    stages_[s]->run(in, out);
    if (out.size() != st.outputs.size())
      throw std::runtime_error("XDNA stage " + st.kernel + " produced " + std::to_string(out.size()) +
                               " buffers, the stage names " + std::to_string(st.outputs.size()));
    for (size_t k = 0; k < out.size(); ++k) env[st.outputs[k]] = std::move(out[k]);
    for (const auto& name : release_after_[s]) env.erase(name);
  }
  std::vector<Buffer> result;
  for (const IoSpec& spec : payload_.outputs) {
    const Buffer& b = env.at(spec.name);
    if (b.dtype != spec.dtype)
      throw std::runtime_error("program " + payload_.name + ": output '" + spec.name + "' came out as " +
                               dtype_name(b.dtype) + ", the program declares " + dtype_name(spec.dtype));
    result.push_back(b);
  }
  return result;
}

}  // namespace xdna::ep
