// Reader of the EPContext payload (layout: payload.h, docs/EPCONTEXT.md).
#include "payload.h"

#include <array>
#include <cstring>

namespace xdna::ep {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat32: return 4;
    case DType::kInt8: return 1;
    case DType::kInt32: return 4;
    case DType::kUInt8: return 1;
    case DType::kInt64: return 8;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kInt8: return "int8";
    case DType::kInt32: return "int32";
    case DType::kUInt8: return "uint8";
    case DType::kInt64: return "int64";
  }
  return "?";
}

int64_t Tensor::count() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

const Attr* StageDef::attr(const std::string& key) const {
  auto it = attrs.find(key);
  return it == attrs.end() || it->second.kind == Attr::Kind::kNone ? nullptr : &it->second;
}

bool StageDef::flag(const std::string& key) const {
  const Attr* a = attr(key);
  if (a == nullptr) return false;
  if (a->kind == Attr::Kind::kBool) return a->b;
  if (a->kind == Attr::Kind::kInt) return a->i != 0;
  throw PayloadError("stage " + kernel + ": attr '" + key + "' must be a bool");
}

double StageDef::number(const std::string& key) const {
  const Attr* a = attr(key);
  if (a == nullptr) throw PayloadError("stage " + kernel + ": attr '" + key + "' is required");
  if (a->kind == Attr::Kind::kFloat) return a->f;
  if (a->kind == Attr::Kind::kInt) return static_cast<double>(a->i);
  throw PayloadError("stage " + kernel + ": attr '" + key + "' must be a number");
}

double StageDef::number_or(const std::string& key, double d) const {
  return attr(key) == nullptr ? d : number(key);
}

std::string StageDef::string_or(const std::string& key, const std::string& d) const {
  const Attr* a = attr(key);
  if (a == nullptr) return d;
  if (a->kind != Attr::Kind::kString)
    throw PayloadError("stage " + kernel + ": attr '" + key + "' must be a string");
  return a->s;
}

const Tensor* StageDef::constant_opt(const std::string& role) const {
  auto it = consts.find(role);
  return it == consts.end() ? nullptr : &it->second;
}

const Tensor& StageDef::constant(const std::string& role) const {
  const Tensor* t = constant_opt(role);
  if (t == nullptr) throw PayloadError("stage " + kernel + ": constant '" + role + "' is missing");
  return *t;
}

uint32_t crc32(const uint8_t* p, size_t n) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1u) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFFu] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

namespace {

// Bounds-checked little-endian cursor: every read past the end is a PayloadError.
class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  template <class T>
  T pod(const char* what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string str(const char* what) {
    const uint32_t len = pod<uint32_t>(what);
    need(len, what);
    std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
    pos_ += len;
    return s;
  }
  void bytes(std::vector<uint8_t>& out, uint64_t len, const char* what) {
    need(len, what);
    out.assign(p_ + pos_, p_ + pos_ + len);
    pos_ += len;
  }
  uint32_t count(const char* what, uint32_t max) {
    const uint32_t c = pod<uint32_t>(what);
    if (c > max) throw PayloadError(std::string("payload malformed: ") + what + " count " +
                                    std::to_string(c) + " exceeds " + std::to_string(max));
    return c;
  }
  bool done() const { return pos_ == n_; }

 private:
  void need(uint64_t k, const char* what) {
    if (k > n_ - pos_)
      throw PayloadError(std::string("payload truncated while reading ") + what);
  }
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

DType read_dtype(Reader& r) {
  const uint8_t d = r.pod<uint8_t>("dtype");
  if (d < 1 || d > 5) throw PayloadError("payload malformed: unknown dtype code " + std::to_string(d));
  return static_cast<DType>(d);
}

IoSpec read_io(Reader& r) {
  IoSpec s;
  s.name = r.str("tensor name");
  s.dtype = read_dtype(r);
  const uint8_t nd = r.pod<uint8_t>("rank");
  for (uint8_t i = 0; i < nd; ++i) {
    Dim d;
    d.value = r.pod<int64_t>("dim");
    d.symbol = r.str("dim symbol");
    s.shape.push_back(d);
  }
  return s;
}

Tensor read_tensor(Reader& r) {
  Tensor t;
  t.dtype = read_dtype(r);
  const uint8_t nd = r.pod<uint8_t>("constant rank");
  int64_t n = 1;
  for (uint8_t i = 0; i < nd; ++i) {
    const int64_t d = r.pod<int64_t>("constant dim");
    if (d < 0 || d > (int64_t{1} << 40)) throw PayloadError("payload malformed: constant dim");
    t.shape.push_back(d);
    n *= d;
  }
  const uint64_t nbytes = r.pod<uint64_t>("constant size");
  if (nbytes != static_cast<uint64_t>(n) * dtype_size(t.dtype))
    throw PayloadError("payload malformed: constant byte size disagrees with its shape");
  r.bytes(t.bytes, nbytes, "constant bytes");
  return t;
}

Attr read_attr(Reader& r) {
  Attr a;
  const uint8_t k = r.pod<uint8_t>("attr kind");
  if (k > 6) throw PayloadError("payload malformed: unknown attr kind " + std::to_string(k));
  a.kind = static_cast<Attr::Kind>(k);
  switch (a.kind) {
    case Attr::Kind::kNone: break;
    case Attr::Kind::kInt: a.i = r.pod<int64_t>("int attr"); break;
    case Attr::Kind::kFloat: a.f = r.pod<double>("float attr"); break;
    case Attr::Kind::kString: a.s = r.str("string attr"); break;
    case Attr::Kind::kBool: a.b = r.pod<uint8_t>("bool attr") != 0; break;
    case Attr::Kind::kInts: {
      const uint32_t n = r.count("int list", 1u << 20);
      for (uint32_t i = 0; i < n; ++i) a.ints.push_back(r.pod<int64_t>("int list item"));
      break;
    }
    case Attr::Kind::kFloats: {
      const uint32_t n = r.count("float list", 1u << 20);
      for (uint32_t i = 0; i < n; ++i) a.floats.push_back(r.pod<double>("float list item"));
      break;
    }
  }
  return a;
}

StageDef read_stage(Reader& r) {
  StageDef s;
  s.kernel = r.str("stage kernel");
  s.kernel_version = r.pod<uint32_t>("stage kernel version");
  s.const_form = r.pod<uint8_t>("stage const form");
  if (s.const_form > 1) throw PayloadError("payload malformed: const form");
  for (uint32_t i = 0, n = r.count("stage inputs", 4096); i < n; ++i) s.inputs.push_back(r.str("input"));
  for (uint32_t i = 0, n = r.count("stage outputs", 4096); i < n; ++i) s.outputs.push_back(r.str("output"));
  for (uint32_t i = 0, n = r.count("stage constants", 4096); i < n; ++i) {
    std::string role = r.str("constant role");
    s.consts.emplace(std::move(role), read_tensor(r));
  }
  for (uint32_t i = 0, n = r.count("stage attrs", 4096); i < n; ++i) {
    std::string key = r.str("attr key");
    s.attrs.emplace(std::move(key), read_attr(r));
  }
  return s;
}

std::vector<int64_t> read_dims(Reader& r, size_t n, const char* what) {
  std::vector<int64_t> v;
  for (size_t i = 0; i < n; ++i) v.push_back(r.pod<int64_t>(what));
  return v;
}

SlotDef read_slot(Reader& r, uint64_t bo_size) {
  SlotDef s;
  s.name = r.str("slot name");
  s.dtype = read_dtype(r);
  s.shape = read_dims(r, r.pod<uint8_t>("slot rank"), "slot dim");
  s.offset = r.pod<uint64_t>("slot offset");
  s.nbytes = r.pod<uint64_t>("slot size");
  const uint8_t k = r.pod<uint8_t>("slot frame rank");
  s.frame = read_dims(r, k, "slot frame dim");
  s.origin = read_dims(r, k, "slot frame origin");
  int64_t n = 1;
  for (int64_t d : s.shape) {
    if (d < 0) throw PayloadError("payload malformed: slot '" + s.name + "' has a negative dim");
    n *= d;
  }
  uint64_t room = s.nbytes;
  if (k > 0) {
    int64_t f = 1;
    for (size_t i = 0; i < k; ++i) {
      if (s.frame[i] < 0 || s.origin[i] < 0)
        throw PayloadError("payload malformed: slot '" + s.name + "' frame");
      f *= s.frame[i];
    }
    room = static_cast<uint64_t>(f) * dtype_size(s.dtype);
  }
  if (s.nbytes != static_cast<uint64_t>(n) * dtype_size(s.dtype) || s.offset + room > bo_size)
    throw PayloadError("payload malformed: slot '" + s.name + "' does not fit its buffer object");
  return s;
}

LaunchDef read_launch(Reader& r) {
  LaunchDef l;
  l.design = r.str("launch design");
  l.n_stages = r.pod<uint32_t>("launch stage count");
  for (uint32_t i = 0, n = r.count("launch inputs", 4096); i < n; ++i) l.inputs.push_back(r.str("launch input"));
  for (uint32_t i = 0, n = r.count("launch outputs", 4096); i < n; ++i) l.outputs.push_back(r.str("launch output"));
  l.in_manifest = r.pod<uint8_t>("launch manifest flag") != 0;
  if (l.in_manifest) {
    l.xclbin = r.str("launch xclbin");
    l.insts = r.str("launch instructions");
    l.xrt_kernel = r.str("launch xrt kernel");
  }
  const uint8_t kind = r.pod<uint8_t>("launch image kind");
  if (kind > 2) throw PayloadError("payload malformed: launch image kind " + std::to_string(kind));
  l.image_kind = static_cast<LaunchDef::Image>(kind);
  if (l.image_kind != LaunchDef::Image::kPresent) {
    l.why = r.str("launch image reason");
    return l;
  }
  LaunchImage& im = l.image;
  im.zero_out = r.pod<uint8_t>("launch zero-out flag") != 0;
  r.bytes(im.weights, r.pod<uint64_t>("weights size"), "weights bytes");
  r.bytes(im.params, r.pod<uint64_t>("params size"), "params bytes");
  im.in_size = r.pod<uint64_t>("IN size");
  for (uint32_t i = 0, n = r.count("IN slots", 4096); i < n; ++i) im.in_slots.push_back(read_slot(r, im.in_size));
  im.out_size = r.pod<uint64_t>("OUT size");
  for (uint32_t i = 0, n = r.count("OUT slots", 4096); i < n; ++i) im.out_slots.push_back(read_slot(r, im.out_size));
  return l;
}

}  // namespace

Payload parse_payload(const uint8_t* data, size_t size) {
  if (size < kHeaderSize)
    throw PayloadError("EPContext payload truncated: " + std::to_string(size) +
                       " bytes, the header alone is " + std::to_string(kHeaderSize));
  if (std::memcmp(data, kPayloadMagic, 8) != 0)
    throw PayloadError("EPContext payload has the wrong magic (not an XDNA payload, or corrupt)");
  Payload p;
  uint32_t header_size = 0, checksum = 0;
  uint64_t body_size = 0;
  std::memcpy(&p.format_version, data + 8, 4);
  std::memcpy(&header_size, data + 12, 4);
  if (p.format_version != kPayloadVersion || header_size != kHeaderSize)
    throw PayloadError("EPContext payload format version " + std::to_string(p.format_version) +
                       " is not supported (this library reads version " +
                       std::to_string(kPayloadVersion) + "; older payloads lack launches, "
                       "image shapes or PARAMS words); recompile the model with xdna-ep compile");
  std::memcpy(&body_size, data + 16, 8);
  std::memcpy(&checksum, data + 24, 4);
  if (body_size != size - kHeaderSize)
    throw PayloadError("EPContext payload truncated or padded: header says " +
                       std::to_string(body_size) + " body bytes, found " +
                       std::to_string(size - kHeaderSize));
  const uint8_t* body = data + kHeaderSize;
  if (crc32(body, body_size) != checksum)
    throw PayloadError("EPContext payload checksum mismatch (corrupt or modified)");
  Reader r(body, body_size);
  p.name = r.str("program name");
  p.kernel_version = r.str("kernel version");
  for (uint32_t i = 0, n = r.count("program inputs", 4096); i < n; ++i) p.inputs.push_back(read_io(r));
  for (uint32_t i = 0, n = r.count("program outputs", 4096); i < n; ++i) p.outputs.push_back(read_io(r));
  for (uint32_t i = 0, n = r.count("stages", 1u << 16); i < n; ++i) p.stages.push_back(read_stage(r));
  size_t next = 0;
  for (uint32_t i = 0, n = r.count("launches", 1u << 16); i < n; ++i) {
    LaunchDef l = read_launch(r);
    if (l.n_stages == 0 || l.n_stages > p.stages.size() - next)
      throw PayloadError("payload malformed: launch " + std::to_string(i) + " names " +
                         std::to_string(l.n_stages) + " stages, " +
                         std::to_string(p.stages.size() - next) + " are left");
    for (uint32_t k = 0; k < l.n_stages; ++k) l.kernels.push_back(p.stages[next + k].kernel);
    next += l.n_stages;
    p.launches.push_back(std::move(l));
  }
  if (next != p.stages.size())
    throw PayloadError("payload malformed: the launches cover " + std::to_string(next) + " of " +
                       std::to_string(p.stages.size()) + " stages");
  const uint32_t n_shapes = r.count("image shapes", 4096);
  if (n_shapes != 0 && n_shapes != p.inputs.size())
    throw PayloadError("payload malformed: " + std::to_string(n_shapes) + " image input shapes for " +
                       std::to_string(p.inputs.size()) + " inputs");
  for (uint32_t i = 0; i < n_shapes; ++i) {
    std::vector<int64_t> shape = read_dims(r, r.pod<uint8_t>("image shape rank"), "image shape dim");
    const IoSpec& io = p.inputs[i];
    bool fits = shape.size() == io.shape.size();
    for (size_t a = 0; fits && a < shape.size(); ++a)
      fits = shape[a] >= 0 && (io.shape[a].value < 0 || io.shape[a].value == shape[a]);
    if (!fits) throw PayloadError("payload malformed: image shape of input '" + io.name +
                                  "' does not match its declared shape");
    p.image_shapes.push_back(std::move(shape));
  }
  if (!r.done()) throw PayloadError("payload malformed: trailing bytes after the image shapes");
  return p;
}

}  // namespace xdna::ep
