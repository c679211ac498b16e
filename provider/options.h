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
  // auto | emulator | npu. npu: regions run through the native NPU backend
  // (npu_backend.h), an error when it is unavailable; auto: the NPU when the backend
  // loads and a device opens, else the emulator (announced).
  std::string device = "auto";
  // Whether the application named a device. A device-selection policy (PREFER_NPU,
  // ...) picks our CPU-hosted emulator entry as a CPU EP without naming one; the
  // emulator is no NPU, so it then claims nothing (plugin.cc).
  bool device_given = false;
  // fallback=error: a model with nothing for XDNA is an error, and so is a region the
  // NPU cannot load or run; allow: such a region runs on the emulator, announced.
  bool fallback_error = false;
  int num_threads = 0;          // 0: the emulator's default
  std::vector<std::string> notes;  // log lines for options that act elsewhere
};

Options parse_options(const std::vector<std::pair<std::string, std::string>>& session_config);

}  // namespace xdna::ep
