// The tap registry (tap.h): tokens -> (callback, user), shared by every session of
// the process; a mutex guards registration, calls run outside it.
#include "tap.h"

#include <map>
#include <mutex>
#include <stdexcept>

#define XDNA_EP_EXPORT __attribute__((visibility("default")))

namespace xdna::ep {
namespace {

struct Tap {
  XdnaEpTapFn fn;
  void* user;
};

std::mutex g_mutex;
std::map<uint64_t, Tap> g_taps;
uint64_t g_next = 1;

int32_t onnx_type(DType t) {
  switch (t) {
    case DType::kFloat32: return 1;
    case DType::kUInt8: return 2;
    case DType::kInt8: return 3;
    case DType::kInt32: return 6;
    case DType::kInt64: return 7;
  }
  return 0;
}

std::vector<XdnaEpTapTensor> views(const std::vector<IoSpec>& specs, const std::vector<Buffer>& bufs) {
  std::vector<XdnaEpTapTensor> out;
  for (size_t i = 0; i < bufs.size(); ++i) {
    const Buffer& b = bufs[i];
    out.push_back({i < specs.size() ? specs[i].name.c_str() : "", onnx_type(b.dtype), b.shape.size(),
                   b.shape.data(), b.ptr});
  }
  return out;
}

}  // namespace

bool tap_registered(uint64_t token) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_taps.count(token) != 0;
}

void call_tap(uint64_t token, const std::string& region, const std::vector<IoSpec>& in_specs,
              const std::vector<Buffer>& inputs, const std::vector<IoSpec>& out_specs,
              const std::vector<Buffer>& outputs) {
  Tap tap{};
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    auto it = g_taps.find(token);
    if (it == g_taps.end())
      throw std::runtime_error("region tap " + std::to_string(token) + " is not registered "
                               "(XdnaEpTapUnregister was called while a session used it)");
    tap = it->second;
  }
  const std::vector<XdnaEpTapTensor> in = views(in_specs, inputs);
  const std::vector<XdnaEpTapTensor> out = views(out_specs, outputs);
  if (tap.fn(tap.user, region.c_str(), in.size(), in.data(), out.size(), out.data()) != 0)
    throw std::runtime_error("region tap " + std::to_string(token) + " failed on region " + region +
                             " (the tap recorded why)");
}

}  // namespace xdna::ep

extern "C" {

// Registers a tap; returns its token (> 0), or 0 for a null callback.
XDNA_EP_EXPORT uint64_t XdnaEpTapRegister(XdnaEpTapFn fn, void* user) {
  if (fn == nullptr) return 0;
  std::lock_guard<std::mutex> lock(xdna::ep::g_mutex);
  const uint64_t token = xdna::ep::g_next++;
  xdna::ep::g_taps[token] = {fn, user};
  return token;
}

// Removes a tap; returns 0, or -1 for an unknown token.
XDNA_EP_EXPORT int XdnaEpTapUnregister(uint64_t token) {
  std::lock_guard<std::mutex> lock(xdna::ep::g_mutex);
  return xdna::ep::g_taps.erase(token) == 1 ? 0 : -1;
}

}  // extern "C"
