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
  std::string device = "auto";  // auto | emulator | npu (this library runs the emulator)
  // Whether the application named a device. A device-selection policy (PREFER_NPU,
  // ...) picks our CPU-hosted emulator entry as a CPU EP without naming one; the
  // emulator is no NPU, so it then claims nothing (plugin.cc).
  bool device_given = false;
  bool fallback_error = false;  // fallback=error: a model with nothing for XDNA is an error
  int num_threads = 0;          // 0: the emulator's default
  std::vector<std::string> notes;  // log lines for options that act elsewhere
};

Options parse_options(const std::vector<std::pair<std::string, std::string>>& session_config);

}  // namespace xdna::ep
