// A C entry point that answers the plugin's NPU probe (npu_probe.h) outside ONNX
// Runtime. Why it exists: ORT's device list shows whether the library listed an
// NPU entry, but not why it did not (that goes to ORT's log, at info level);
// `xdna-ep devices` prints the reason beside the list through this. Not part of
// the ORT plugin API.
#include <cstring>
#include <exception>
#include <string>

#include "npu_backend.h"
#include "npu_probe.h"

#define XDNA_EP_EXPORT __attribute__((visibility("default")))

extern "C" {

// 1 when the library lists an NPU entry (out: the device node), 0 when not (out:
// why), -1 on an internal error (out: what). out is always NUL-terminated.
XDNA_EP_EXPORT int XdnaEpNpuProbe(char* out, size_t out_len) {
  std::string text;
  int rc = -1;
  try {
    const xdna::ep::NpuProbeResult r = xdna::ep::probe_npu(xdna::ep::NpuProbeRoots::from_env());
    rc = r.usable() ? 1 : 0;
    text = r.usable() ? r.device.path : r.reason();
  } catch (const std::exception& e) {
    text = e.what();
  }
  if (out != nullptr && out_len > 0) {
    const size_t n = text.size() < out_len - 1 ? text.size() : out_len - 1;
    std::memcpy(out, text.data(), n);
    out[n] = '\0';
  }
  return rc;
}

// 1 when the native NPU backend loads and opens a device (what a session with
// device=npu|auto does at its first region), 0 when not (out: why). xdna-ep's
// Python session asks this before it hands a model to the plugin with device=npu,
// so device=auto without an NPU is announced by the session, with the reason.
XDNA_EP_EXPORT int XdnaEpNpuBackendOpens(char* out, size_t out_len) {
  std::string why;
  int rc = 0;
  try {
    rc = xdna::ep::npu_backend_available(&why) ? 1 : 0;
  } catch (const std::exception& e) {
    why = e.what();
  }
  if (out != nullptr && out_len > 0) {
    const size_t n = why.size() < out_len - 1 ? why.size() : out_len - 1;
    std::memcpy(out, why.data(), n);
    out[n] = '\0';
  }
  return rc;
}

}  // extern "C"
