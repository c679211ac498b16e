// Provider options of the plugin library (docs/PROVIDER_OPTIONS.md). ONNX
// Runtime hands them to CreateEp as session config entries
// "ep.<ep name, lower case>.<option>"; anything else under that prefix is an error.
#pragma once
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace xdna::ep {

struct OptionError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct Options {
  std::string device = "auto";  // auto | emulator | npu, as given (see resolve_backend)
  // Whether the application named a device. A device-selection policy (PREFER_NPU,
  // ...) picks our CPU-hosted emulator entry as a CPU EP without naming one; the
  // emulator is no NPU, so it then claims nothing (plugin.cc).
  bool device_given = false;
  bool fallback_error = false;  // fallback=error: a model with nothing for XDNA is an error
  int num_threads = 0;          // 0: the emulator's default
  std::vector<std::string> notes;  // log lines for options that act elsewhere
};

Options parse_options(const std::vector<std::pair<std::string, std::string>>& session_config);

// What runs the regions of an EP instance.
enum class Backend {
  kNone,      // claims nothing: the emulator entry picked by a policy, no device named
  kEmulator,  // the host emulator (C++ kernels on the CPU)
  kNpu,       // the NPU (its backend library)
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
// entry is among the selected devices (PREFER_NPU picks it), else kNone; auto: the
// NPU when selected, else the emulator; npu without the NPU entry selected is an
// OptionError saying why.
BackendChoice resolve_backend(const Options& options, const DeviceSelection& selection);

}  // namespace xdna::ep
