// Is there a usable amdxdna NPU on this machine? The C++ twin of the Python
// device probe (python/xdna_ep/runtime/discovery.py: device node, owning driver,
// driver loaded, firmware minimum), plus what only the plugin library needs: its
// NPU backend library can be loaded. The factory (plugin.cc) lists an NPU entry in
// ort.get_ep_devices() only when this says usable, and logs the reason otherwise.
//
// Roots are overridable through the environment so that tests can describe an NPU
// machine with a FAKE tree of files (tests/test_plugin_devices.py); they are for
// tests, not for users:
//   XDNA_EP_DEV_ROOT   instead of /dev/accel
//   XDNA_EP_SYS_ROOT   instead of /sys
//   XDNA_EP_PROC_ROOT  instead of /proc (only <root>/modules is read)
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace xdna::ep {

constexpr uint32_t kAmdPciVendorId = 0x1022;

// Where the probe looks. Defaults describe the real machine.
struct NpuProbeRoots {
  std::string dev_root = "/dev/accel";
  std::string sys_root = "/sys";
  std::string proc_root = "/proc";

  // The defaults, with each XDNA_EP_*_ROOT variable that is set (and not empty) applied.
  static NpuProbeRoots from_env();
};

// One /dev/accel/accelN node as sysfs describes it ("" where sysfs does not say).
struct AccelNodeInfo {
  std::string path;       // e.g. /dev/accel/accel0
  std::string driver;     // name of the driver that owns it, e.g. amdxdna or intel_vpu
  std::string firmware;   // amdxdna's fw_version attribute, e.g. 1.5.5.391
  std::string vbnv;       // board name the driver reports, e.g. RyzenAI-npu1
  std::string vendor;     // PCI vendor id as sysfs writes it, e.g. 0x1022
  std::string device;     // PCI device id, e.g. 0x1502
  uint32_t vendor_id = 0;  // parsed from vendor (0: unknown)
  uint32_t device_id = 0;  // parsed from device (0: unknown)
};

// One thing missing for the NPU, in the Python probe's vocabulary where it has one.
struct NpuProblem {
  std::string missing;  // "device-node", "pci-id", "driver", "firmware", "backend"
  std::string message;
};

struct NpuProbeResult {
  std::vector<AccelNodeInfo> nodes;  // every accel node found, whatever its driver
  bool driver_loaded = false;
  std::string driver_version;        // "" when the module does not say
  std::vector<NpuProblem> problems;  // in check order; empty = usable
  AccelNodeInfo device;              // the NPU an entry is listed for (first amdxdna node)

  bool usable() const { return problems.empty(); }
  // All problems' messages joined with "; " ("" when usable).
  std::string reason() const;
};

// Oldest npu1 firmware accepted (discovery.py MIN_FIRMWARE).
const std::vector<int>& min_firmware();

// The numbers of a version string in order ("1.5.5.391" -> 1,5,5,391); empty for none.
std::vector<int> parse_version(const std::string& text);

// Device node, driver and firmware checks only (no backend library): the twin of
// discovery.probe_system's first three checks.
NpuProbeResult probe_npu_device(const NpuProbeRoots& roots);

// probe_npu_device, then (for a usable device only) whether the NPU backend library
// loads (problem "backend").
NpuProbeResult probe_npu(const NpuProbeRoots& roots);

// Whether the NPU backend library (libxdna_ep_npu.so beside this library, or
// $XDNA_EP_NPU_LIBRARY) loads and opens an NPU; when not, *why says so. Declared with
// the backend (npu_backend.h).
bool npu_backend_available(std::string* why);

}  // namespace xdna::ep
