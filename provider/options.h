// Provider options of the plugin library (docs/PROVIDER_OPTIONS.md). ONNX
// Runtime hands them to CreateEp as session config entries
// "ep.<ep name, lower case>.<option>"; anything else under that prefix is an error.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace xdna::ep {

struct OptionError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct Options {
  // auto | emulator | npu, as given (see resolve_backend). npu: regions run through
  // the native NPU backend (npu_backend.h), an error when it is unavailable; auto: the
  // NPU when the backend loads and a device opens, else the emulator (announced).
  std::string device = "auto";
  // Whether the application named a device. A device-selection policy (PREFER_NPU,
  // ...) picks our CPU-hosted emulator entry as a CPU EP without naming one; the
  // emulator is no NPU, so it then claims nothing (plugin.cc).
  bool device_given = false;
  // fallback=error: a model with nothing for XDNA is an error, and so is a region the
  // NPU cannot load or run; allow: such a region runs on the emulator, announced.
  bool fallback_error = false;
  int num_threads = 0;          // 0: the emulator's default
  // tap=<token>: internal, for xdna-ep's measuring tools (tap.h); 0: no tap
  uint64_t tap = 0;
  std::vector<std::string> notes;  // log lines for options that act elsewhere
};

Options parse_options(const std::vector<std::pair<std::string, std::string>>& session_config);

// What runs the regions of an EP instance.
enum class Backend {
  kNone,      // claims nothing: the emulator entry picked by a policy, no device named
  kEmulator,  // the host emulator (C++ kernels on the CPU)
  kNpu,       // the NPU through its backend library (auto: the emulator when it does not open)
};

// The OrtEpDevices ONNX Runtime created the EP for (CreateEp), as far as the
// choice of backend cares.
struct DeviceSelection {
  bool npu_selected = false;  // one of them is our NPU entry (ep_metadata backend=npu)
  std::string npu_path;       // its device node, e.g. /dev/accel/accel0
  bool npu_listed = false;    // the factory lists an NPU entry at all
  std::string no_npu_reason;  // why it does not (when !npu_listed)
};

struct BackendChoice {
  Backend backend = Backend::kNone;
  std::string note;  // a log line saying what was chosen and why ("" for none)
};

// device option x selected devices -> backend. No device named: the NPU when the NPU
// entry is among the selected devices (PREFER_NPU picks it), else kNone. Named: emulator
// is the emulator; npu and auto try the NPU backend whichever entry was selected, since
// the device list is a probe and the backend opening a device is the truth (npu fails
// with both reasons when it does not open, auto runs the emulator, announced).
BackendChoice resolve_backend(const Options& options, const DeviceSelection& selection);

}  // namespace xdna::ep
