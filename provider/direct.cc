// A C entry point that runs one EPContext payload's Program without ONNX Runtime.
//
// Why it exists: `xdna-ep bench session` measures what ONNX Runtime and the plugin
// add around a region call (the region-call overhead), which needs the same
// Program run directly, from the same library, as the baseline. Tests also use it
// to check a payload runs identically inside and outside ORT. It is not part of
// the ORT plugin API; its three symbols are exported beside the ORT entry points
// (exports.map).
#include <chrono>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "payload.h"
#include "runner.h"

namespace {

void set_error(char* err, size_t err_len, const std::string& msg) {
  if (err == nullptr || err_len == 0) return;
  const size_t n = msg.size() < err_len - 1 ? msg.size() : err_len - 1;
  std::memcpy(err, msg.data(), n);
  err[n] = '\0';
}

}  // namespace

#define XDNA_EP_EXPORT __attribute__((visibility("default")))

extern "C" {

// Parses and prepares a payload; nullptr (and the reason in err) on failure.
XDNA_EP_EXPORT void* XdnaEpProgramLoad(const uint8_t* data, size_t size, char* err, size_t err_len) {
  try {
    return new xdna::ep::Program(xdna::ep::parse_payload(data, size));
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
    return nullptr;
  }
}

// Runs the program on float32 inputs (program-input order) and copies output
// `out_index` (float32) into `out`, which holds `out_len` floats. Returns 0, or -1
// with the reason in err. `seconds` (may be null) receives the time of the program
// run itself, measured here, without the caller's call overhead.
XDNA_EP_EXPORT int XdnaEpProgramRunF32(void* handle, size_t n_in, const float* const* data,
                        const int64_t* const* shapes, const size_t* ranks, size_t out_index,
                        float* out, size_t out_len, double* seconds, char* err,
                        size_t err_len) {
  try {
    const auto* program = static_cast<const xdna::ep::Program*>(handle);
    std::vector<xdna::ep::Buffer> inputs(n_in);
    for (size_t i = 0; i < n_in; ++i)
      inputs[i] = xdna::ep::Buffer::borrow(xdna::ep::DType::kFloat32,
                                           std::vector<int64_t>(shapes[i], shapes[i] + ranks[i]),
                                           data[i]);
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<xdna::ep::Buffer> outs = program->run(inputs);
    if (seconds != nullptr)
      *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (out_index >= outs.size()) throw std::runtime_error("no output " + std::to_string(out_index));
    const xdna::ep::Buffer& b = outs[out_index];
    if (b.dtype != xdna::ep::DType::kFloat32) throw std::runtime_error("output is not float32");
    if (static_cast<size_t>(b.count()) != out_len)
      throw std::runtime_error("output has " + std::to_string(b.count()) + " elements, buffer " +
                               std::to_string(out_len));
    if (out_len > 0) std::memcpy(out, b.ptr, b.nbytes());
    return 0;
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
    return -1;
  }
}

XDNA_EP_EXPORT void XdnaEpProgramFree(void* handle) { delete static_cast<xdna::ep::Program*>(handle); }

}  // extern "C"
