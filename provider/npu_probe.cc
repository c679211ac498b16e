// The NPU device probe (npu_probe.h). Mirrors discovery.probe_system's device-node,
// driver and firmware checks, in the same order and with the same messages, so
// that `xdna-ep devices` and the plugin's device list give the same reasons.
// One deliberate difference: a node whose owning driver sysfs does not name
// counts for the Python probe (it reports), not here (the plugin presents the
// device to ONNX Runtime as AMD NPU hardware, so ownership must be positive).
#include "npu_probe.h"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace xdna::ep {
namespace {

constexpr const char* kDriver = "amdxdna";

// A sysfs attribute's text, whitespace-trimmed ("" when missing or unreadable).
std::string read_trimmed(const std::string& path) {
  std::ifstream f(path);
  if (!f) return "";
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The last component of the path a symlink chain resolves to ("" if it does not resolve).
std::string resolved_name(const std::string& link) {
  char buf[PATH_MAX];
  if (::realpath(link.c_str(), buf) == nullptr) return "";
  const std::string full(buf);
  const auto slash = full.find_last_of('/');
  return slash == std::string::npos ? full : full.substr(slash + 1);
}

uint32_t parse_hex_id(const std::string& text) {
  if (text.empty()) return 0;
  char* end = nullptr;
  const unsigned long v = std::strtoul(text.c_str(), &end, 16);
  return (end != nullptr && *end == '\0' && v <= 0xffffffffUL) ? static_cast<uint32_t>(v) : 0;
}

std::string join_version(const std::vector<int>& v) {
  std::string out;
  for (int n : v) out += (out.empty() ? "" : ".") + std::to_string(n);
  return out;
}

// accel* entries of the device directory, sorted by name (as Python's sorted(glob)).
std::vector<std::string> accel_names(const std::string& dev_root) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dev_root.c_str());
  if (d == nullptr) return names;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.compare(0, 5, "accel") == 0) names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

AccelNodeInfo describe_node(const NpuProbeRoots& roots, const std::string& name) {
  const std::string dev = roots.sys_root + "/class/accel/" + name + "/device";
  AccelNodeInfo n;
  n.path = roots.dev_root + "/" + name;
  n.driver = resolved_name(dev + "/driver");
  n.firmware = read_trimmed(dev + "/fw_version");
  n.vbnv = read_trimmed(dev + "/vbnv");
  n.vendor = read_trimmed(dev + "/vendor");
  n.device = read_trimmed(dev + "/device");
  n.vendor_id = parse_hex_id(n.vendor);
  n.device_id = parse_hex_id(n.device);
  return n;
}

bool module_listed(const std::string& proc_modules) {
  std::ifstream f(proc_modules);
  std::string line;
  while (std::getline(f, line)) {
    if (line.substr(0, line.find(' ')) == kDriver) return true;
  }
  return false;
}

std::string env_or(const char* name, const std::string& dflt) {
  const char* v = std::getenv(name);
  return (v != nullptr && *v != '\0') ? std::string(v) : dflt;
}

}  // namespace

NpuProbeRoots NpuProbeRoots::from_env() {
  NpuProbeRoots r;
  r.dev_root = env_or("XDNA_EP_DEV_ROOT", r.dev_root);
  r.sys_root = env_or("XDNA_EP_SYS_ROOT", r.sys_root);
  r.proc_root = env_or("XDNA_EP_PROC_ROOT", r.proc_root);
  return r;
}

std::string NpuProbeResult::reason() const {
  std::string out;
  for (const NpuProblem& p : problems) out += (out.empty() ? "" : "; ") + p.message;
  return out;
}

const std::vector<int>& min_firmware() {
  static const std::vector<int> v = {1, 5, 0, 0};
  return v;
}

std::vector<int> parse_version(const std::string& text) {
  std::vector<int> nums;
  size_t i = 0;
  while (i < text.size()) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    long n = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      n = std::min<long>(n * 10 + (text[i] - '0'), INT_MAX);
      ++i;
    }
    nums.push_back(static_cast<int>(n));
  }
  return nums;
}

NpuProbeResult probe_npu_device(const NpuProbeRoots& roots) {
  NpuProbeResult r;
  for (const std::string& name : accel_names(roots.dev_root)) r.nodes.push_back(describe_node(roots, name));
  std::vector<const AccelNodeInfo*> npu;
  for (const AccelNodeInfo& n : r.nodes)
    if (n.driver == kDriver) npu.push_back(&n);
  if (!npu.empty()) r.device = *npu.front();

  const std::string module_dir = roots.sys_root + "/module/" + kDriver;
  const std::string proc_modules = roots.proc_root + "/modules";
  r.driver_loaded = is_dir(module_dir) || module_listed(proc_modules);
  if (r.driver_loaded) {
    r.driver_version = read_trimmed(module_dir + "/version");
    if (r.driver_version.empty()) r.driver_version = read_trimmed(module_dir + "/srcversion");
  }

  if (r.nodes.empty()) {
    r.problems.push_back({"device-node", "no NPU device node (" + roots.dev_root + "/accel* not found)"});
  } else if (npu.empty()) {
    std::string owners;
    for (const AccelNodeInfo& n : r.nodes) {
      const std::string base = n.path.substr(n.path.find_last_of('/') + 1);
      owners += (owners.empty() ? "" : ", ") + base + ": " + (n.driver.empty() ? "unknown" : n.driver);
    }
    r.problems.push_back({"device-node", std::string("no ") + kDriver +
                                             " device node (accel nodes belong to other drivers: " + owners + ")"});
  }
  for (const AccelNodeInfo* n : npu) {
    if (!n->vendor.empty() && n->vendor_id != kAmdPciVendorId)
      r.problems.push_back({"pci-id", n->path + " has PCI vendor id " + n->vendor + ", not AMD's 0x1022"});
  }
  if (!r.driver_loaded)
    r.problems.push_back({"driver", std::string("the ") + kDriver + " driver is not loaded (not in " +
                                        proc_modules + " or " + roots.sys_root + "/module)"});
  for (const AccelNodeInfo* n : npu) {
    const std::vector<int> fw = parse_version(n->firmware);
    if (!fw.empty() && fw < min_firmware())
      r.problems.push_back({"firmware", "NPU firmware " + n->firmware + " on " + n->path +
                                            " is too old (need >= " + join_version(min_firmware()) + ")"});
  }
  return r;
}

NpuProbeResult probe_npu(const NpuProbeRoots& roots) {
  NpuProbeResult r = probe_npu_device(roots);
  // only for a usable device: loading the backend pulls in XRT's libraries
  std::string why;
  if (r.usable() && !npu_backend_available(&why)) r.problems.push_back({"backend", why});
  return r;
}

}  // namespace xdna::ep
