// Validation of the provider options the plugin library receives.
#include "options.h"

#include <cctype>
#include <cstdlib>

namespace xdna::ep {
namespace {

const char* const kKnown[] = {"device", "quantization", "calibration", "cache_dir", "report",
                              "fallback", "exclude_ops", "exclude_nodes", "num_threads", "tap"};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string valid_list() {
  std::string out;
  for (const char* k : kKnown) out += std::string(out.empty() ? "" : ", ") + k;
  return out;
}

}  // namespace

Options parse_options(const std::vector<std::pair<std::string, std::string>>& session_config) {
  const std::string prefix = "ep.xdnaexecutionprovider.";
  Options o;
  for (const auto& [raw_key, value] : session_config) {
    const std::string key_l = lower(raw_key);
    if (key_l.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string key = raw_key.substr(prefix.size());
    bool known = false;
    for (const char* k : kKnown) known = known || key == k;
    if (!known)
      throw OptionError("XDNAExecutionProvider: unknown provider option '" + key +
                        "' (valid: " + valid_list() + ")");
    if (key == "device") {
      if (value != "auto" && value != "emulator" && value != "npu")
        throw OptionError("XDNAExecutionProvider: provider option device='" + value +
                          "' is not one of auto, npu, emulator");
      o.device = value;
      o.device_given = true;
    } else if (key == "fallback") {
      if (value != "allow" && value != "error")
        throw OptionError("XDNAExecutionProvider: provider option fallback='" + value +
                          "' is not one of allow, error");
      o.fallback_error = value == "error";
    } else if (key == "num_threads") {
      char* end = nullptr;
      const long n = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || n < 1 || n > 1024)
        throw OptionError("XDNAExecutionProvider: provider option num_threads='" + value +
                          "' must be an integer >= 1");
      o.num_threads = static_cast<int>(n);
    } else if (key == "tap") {
      char* end = nullptr;
      const unsigned long long t = std::strtoull(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || t == 0)
        throw OptionError("XDNAExecutionProvider: option tap='" + value +
                          "' must be a token of XdnaEpTapRegister (an integer > 0)");
      o.tap = static_cast<uint64_t>(t);
    } else if (key == "quantization") {
      if (value != "static" && value != "dynamic")
        throw OptionError("XDNAExecutionProvider: provider option quantization='" + value +
                          "' is not one of static, dynamic");
      o.notes.push_back("XDNAExecutionProvider: option quantization applies when a model is "
                        "compiled (xdna-ep compile --quantization); an EPContext model keeps the "
                        "quantization it was compiled with");
    } else {
      o.notes.push_back("XDNAExecutionProvider: option " + key + " applies when a model is "
                        "compiled (xdna-ep compile); it does not change an EPContext model");
    }
  }
  return o;
}

BackendChoice resolve_backend(const Options& options, const DeviceSelection& sel) {
  const std::string npu = "the NPU at " + sel.npu_path;
  if (!options.device_given) {
    if (sel.npu_selected)
      return {Backend::kNpu, "XDNAExecutionProvider: device=npu (" + npu + "): its NPU entry was "
                             "selected without a device option (e.g. by PREFER_NPU)"};
    return {Backend::kNone, ""};
  }
  if (options.device == "emulator")
    return {Backend::kEmulator, "XDNAExecutionProvider: device=emulator (the host emulator; speed is CPU speed)"};
  if (sel.npu_selected)
    return {Backend::kNpu, "XDNAExecutionProvider: device=" + options.device + " -> " + npu};
  const std::string why = sel.npu_listed
      ? "the NPU entry (ep_metadata backend=npu) of ort.get_ep_devices() was not among the "
        "devices selected"
      : "this machine has no NPU entry in ort.get_ep_devices() (" + sel.no_npu_reason + ")";
  return {Backend::kNpu, "XDNAExecutionProvider: device=" + options.device + ": " + why +
                             "; the NPU backend is tried"};
}

}  // namespace xdna::ep
