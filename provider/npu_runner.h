// A compiled region on the NPU: the payload's launches run through the native NPU
// backend (npu_backend.h). The plugin packs each launch's IN from the named
// buffers by the image's slots and unpacks OUT the same way; WEIGHTS and PARAMS
// are the image's bytes as the Python layout code computed them
// (docs/EPCONTEXT.md, version 2), so no layout is re-implemented here.
#pragma once
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "npu_backend.h"
#include "payload.h"
#include "runner.h"

namespace xdna::ep {

// The region cannot go to the NPU at all (no image, refused launch, load failure).
struct NpuUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A run on the NPU failed; `broken`: a command failed, the device state is unknown.
struct NpuRunError : std::runtime_error {
  bool broken;
  NpuRunError(const std::string& m, bool b) : std::runtime_error(m), broken(b) {}
};

// Why `payload` has no NPU form ("" when every launch has an image and a design entry).
std::string npu_refusal(const Payload& payload);

// Packs `b` into a BO image at `slot` (its window, for a framed slot).
void pack_slot(const SlotDef& slot, const Buffer& b, std::vector<uint8_t>& bo);
// A fresh buffer of `slot`'s dtype and shape from BO bytes.
Buffer unpack_slot(const SlotDef& slot, const std::vector<uint8_t>& bo);
// Input shapes as "name[d0,d1], ..." (for messages).
std::string shape_text(const std::vector<IoSpec>& specs, const std::vector<std::vector<int64_t>>& shapes);

class NpuProgram {
 public:
  // Loads every launch on `device` (designs registered, WEIGHTS uploaded); throws
  // NpuUnavailable with the reason.
  NpuProgram(const Payload& payload, std::shared_ptr<NpuDevice> device);
  ~NpuProgram();
  NpuProgram(const NpuProgram&) = delete;
  NpuProgram& operator=(const NpuProgram&) = delete;
  // inputs in program-input order; outputs in program-output order. Throws NpuRunError.
  std::vector<Buffer> run(const std::vector<Buffer>& inputs) const;
  // Whether `inputs` have the shapes the NPU image was computed for (a program with
  // symbolic dims has its image for the sizes known at compile time only).
  bool fits(const std::vector<Buffer>& inputs) const;
  // The image's input shapes, e.g. "x[1,8]" (for messages).
  std::string image_shape_text() const;

 private:
  const Payload& payload_;
  std::shared_ptr<NpuDevice> device_;
  void* handle_ = nullptr;
};

}  // namespace xdna::ep
