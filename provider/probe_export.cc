// A C entry point that answers the plugin's NPU probe (npu_probe.h) outside ONNX
// Runtime. Why it exists: ORT's device list shows whether the library listed an
// NPU entry, but not why it did not (that goes to ORT's log, at info level);
// `xdna-ep devices` prints the reason beside the list through this. Not part of
// the ORT plugin API.
#include <cstring>
#include <exception>
#include <string>

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

}  // extern "C"
