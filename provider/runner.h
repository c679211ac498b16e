// The native Program runner: a compiled region (Payload) prepared once, then
// run per call on the emulator's C++ kernels. No Python, no GIL.
//
// Stages are looked up in one table (stage_table(), stages.cc): kernel name ->
// supported kernel version -> factory that prepares the stage from its
// StageDef. A new stage kind is one entry there plus its implementation.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "payload.h"

namespace xdna::ep {

// A kernel, version or attribute the runner cannot execute: raised at Compile.
struct UnsupportedStage : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One buffer of a run: owned storage, or a borrowed pointer (region inputs).
struct Buffer {
  DType dtype = DType::kFloat32;
  std::vector<int64_t> shape;
  std::shared_ptr<std::vector<uint8_t>> owned;
  const uint8_t* ptr = nullptr;

  int64_t count() const;
  size_t nbytes() const { return static_cast<size_t>(count()) * dtype_size(dtype); }
  template <class T>
  const T* data() const { return reinterpret_cast<const T*>(ptr); }
  template <class T>
  T* mutable_data() { return reinterpret_cast<T*>(owned->data()); }
  // Storage for a stage output, possibly reused (not cleared): the stage must
  // write every element.
  static Buffer allocate(DType dtype, std::vector<int64_t> shape);
  static Buffer borrow(DType dtype, std::vector<int64_t> shape, const void* p);
};

// A prepared stage: constants packed once at Compile, run() per call.
class StageImpl {
 public:
  virtual ~StageImpl() = default;
  virtual void run(const std::vector<const Buffer*>& in, std::vector<Buffer>& out) const = 0;
};

using StageFactory = std::unique_ptr<StageImpl> (*)(const StageDef&);

struct StageEntry {
  const char* kernel;
  uint32_t version;  // the kernels/manifest.json kernel_version this entry implements
  StageFactory make;
};

const std::vector<StageEntry>& stage_table();

// Stage-level checks shared by the implementations.
void require(bool ok, const std::string& kernel, const std::string& what);
const Buffer& input_of(const std::vector<const Buffer*>& in, size_t i, DType dtype,
                       const std::string& kernel, const char* name);
float scale_value(double v, const std::string& kernel, const std::string& what);
float scale_buffer(const Buffer& b, const std::string& kernel, const char* what);

class Program {
 public:
  explicit Program(Payload payload);  // throws UnsupportedStage / PayloadError
  const Payload& payload() const { return payload_; }
  // inputs in program-input order; returns outputs in program-output order.
  std::vector<Buffer> run(const std::vector<Buffer>& inputs) const;

 private:
  Payload payload_;
  std::vector<std::unique_ptr<StageImpl>> stages_;
  std::vector<std::vector<std::string>> release_after_;  // buffers last read by stage s
};

}  // namespace xdna::ep
