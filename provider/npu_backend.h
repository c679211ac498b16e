// The plugin's side of the native NPU backend: finds and dlopens libxdna_ep_npu.so
// (provider/npu/, the only code that touches XRT) and opens an NPU through it.
//
// Why dlopen: the plugin never links XRT, so it loads and runs (on the emulator) on
// every machine; the NPU backend is there only where it was built against XRT.
// Library: $XDNA_EP_NPU_LIBRARY (tests, alternate builds), else libxdna_ep_npu.so
// next to this plugin library.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "npu/npu_abi.h"

namespace xdna::ep {

// The resolved C ABI of a loaded backend library (never unloaded: a process-wide,
// refcounted dlopen handle).
struct NpuApi {
  std::string path;
  XdnaNpuOpenFn open = nullptr;
  XdnaNpuLoadFn load = nullptr;
  XdnaNpuRunFn run = nullptr;
  XdnaNpuReleaseFn unload = nullptr;
  XdnaNpuReleaseFn close = nullptr;
  XdnaNpuLastErrorFn last_error = nullptr;
};

// An open NPU device of the backend; closed when the last holder (an EP, a
// region's NpuProgram) lets go.
class NpuDevice {
 public:
  NpuDevice(NpuApi api, void* handle) : api_(std::move(api)), handle_(handle) {}
  ~NpuDevice();
  NpuDevice(const NpuDevice&) = delete;
  NpuDevice& operator=(const NpuDevice&) = delete;
  const NpuApi& api() const { return api_; }
  void* handle() const { return handle_; }
  std::string last_error() const;

 private:
  NpuApi api_;
  void* handle_;
};

constexpr const char* kNpuLibraryEnv = "XDNA_EP_NPU_LIBRARY";
constexpr const char* kXclbinDirEnv = "XDNA_EP_XCLBIN_DIR";
constexpr unsigned int kNpuTimeoutMs = 10000;  // as runtime/xrt.py DEFAULT_TIMEOUT_MS
// Overrides the command timeout (milliseconds, 1 .. 3600000), as in runtime/xrt.py.
constexpr const char* kNpuTimeoutEnv = "XDNA_EP_NPU_TIMEOUT_MS";

// Loads the backend library and opens NPU 0 with the command timeout of
// $XDNA_EP_NPU_TIMEOUT_MS (else kNpuTimeoutMs); nullptr with the reason in *why.
std::shared_ptr<NpuDevice> open_npu_device(std::string* why);

// Whether the NPU backend loads and an NPU opens through it (the device is closed
// again); *why says why not. For device discovery (get_supported_devices).
bool npu_backend_available(std::string* why);

// Where xclbins and instruction files are looked up, in order: every directory of
// $XDNA_EP_XCLBIN_DIR (':' separated), then <plugin dir>/_kernels/xclbin (the
// package's, as python/xdna_ep/runtime/xclbins.py search_path()).
std::vector<std::string> xclbin_search_dirs();

}  // namespace xdna::ep
