// The EPContext payload of one compiled region (docs/EPCONTEXT.md, byte by byte):
// a fixed little-endian binary layout that this reader parses without a JSON
// parser. Written by python/xdna_ep/ort/epcontext.py.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace xdna::ep {

constexpr char kPayloadMagic[8] = {'X', 'D', 'N', 'A', 'E', 'P', 'C', 'X'};
// 4: images' PARAMS bytes of layout version 2 (binary words first; no field changes);
// 3: + image input shapes; 2: launches + images (refused)
constexpr uint32_t kPayloadVersion = 4;
constexpr size_t kHeaderSize = 32;

// A payload that cannot be used: wrong magic/version/checksum, truncated, malformed.
struct PayloadError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class DType : uint8_t { kFloat32 = 1, kInt8 = 2, kInt32 = 3, kUInt8 = 4, kInt64 = 5 };
size_t dtype_size(DType t);
const char* dtype_name(DType t);

struct Tensor {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  int64_t count() const;
  template <class T>
  const T* data() const { return reinterpret_cast<const T*>(bytes.data()); }
};

struct Attr {
  enum class Kind : uint8_t { kNone = 0, kInt = 1, kFloat = 2, kString = 3, kBool = 4,
                              kInts = 5, kFloats = 6 };
  Kind kind = Kind::kNone;
  int64_t i = 0;
  double f = 0.0;
  bool b = false;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<double> floats;
};

struct Dim {
  int64_t value = -1;  // -1: symbolic (any size, equal wherever the symbol repeats)
  std::string symbol;
};

struct IoSpec {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<Dim> shape;
};

struct StageDef {
  std::string kernel;
  uint32_t kernel_version = 0;
  // 0: consts are the program constants by role; 1: consts are the kernel's
  // device_constants blobs (names "#0", "#1", ...), what the NPU weights BO holds.
  uint8_t const_form = 0;
  std::vector<std::string> inputs, outputs;
  std::map<std::string, Tensor> consts;
  std::map<std::string, Attr> attrs;

  const Attr* attr(const std::string& key) const;
  bool flag(const std::string& key) const;              // bool attr, false if absent
  double number(const std::string& key) const;          // required number
  double number_or(const std::string& key, double d) const;
  std::string string_or(const std::string& key, const std::string& d) const;
  const Tensor& constant(const std::string& role) const;  // required
  const Tensor* constant_opt(const std::string& role) const;
};

// One buffer inside an NPU buffer object (runtime/layout.py Slot): `nbytes` at
// `offset`; with a frame, the buffer (folded to the frame's rank) is the window at
// `origin` of a row-major array of shape `frame` that starts at `offset`.
struct SlotDef {
  std::string name;
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  uint64_t offset = 0, nbytes = 0;
  std::vector<int64_t> frame, origin;
};

// The buffer-object contents of one launch, computed at compile time by the
// Python layout code (python/xdna_ep/ort/npu_image.py) for concrete shapes.
struct LaunchImage {
  bool zero_out = false;  // a fused design's private scratch: OUT starts zeroed
  std::vector<uint8_t> weights, params;
  uint64_t in_size = 0, out_size = 0;
  std::vector<SlotDef> in_slots, out_slots;
};

struct LaunchDef {
  enum class Image : uint8_t { kNone = 0, kPresent = 1, kRefused = 2 };
  std::string design;
  uint32_t n_stages = 0;        // the next n_stages stages of Payload::stages
  std::vector<std::string> kernels;  // those stages' kernels (for messages)
  std::vector<std::string> inputs, outputs;  // read from IN / written to OUT
  bool in_manifest = false;     // the design's kernel-manifest entry follows
  std::string xclbin, insts, xrt_kernel;
  Image image_kind = Image::kNone;
  std::string why;              // kNone / kRefused: why there is no image
  LaunchImage image;
};

struct Payload {
  uint32_t format_version = 0;
  std::string name;
  std::string kernel_version;
  std::vector<IoSpec> inputs, outputs;
  std::vector<StageDef> stages;
  std::vector<LaunchDef> launches;
  // The concrete input shapes the launch images are for (program-input order), when
  // the program has symbolic dims the compile knew the sizes of; empty otherwise.
  std::vector<std::vector<int64_t>> image_shapes;
};

// CRC-32 (IEEE 802.3, zlib's crc32): detects corruption, not tampering.
uint32_t crc32(const uint8_t* p, size_t n);
// Parses and verifies (magic, version, size, checksum) one payload; throws PayloadError.
Payload parse_payload(const uint8_t* data, size_t size);

}  // namespace xdna::ep
