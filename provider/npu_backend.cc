// Loading libxdna_ep_npu.so and opening an NPU through it (npu_backend.h).
#include "npu_backend.h"

#include <dlfcn.h>

#include <cstdlib>

namespace xdna::ep {
namespace {

std::string plugin_dir() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&xclbin_search_dirs), &info) == 0 || info.dli_fname == nullptr)
    return ".";
  const std::string path = info.dli_fname;
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

std::string library_path() {
  const char* env = std::getenv(kNpuLibraryEnv);
  if (env != nullptr && *env != '\0') return env;
  return plugin_dir() + "/libxdna_ep_npu.so";
}

template <class Fn>
bool resolve(void* lib, const char* name, Fn& out, std::string* why, const std::string& path) {
  out = reinterpret_cast<Fn>(dlsym(lib, name));
  if (out == nullptr && why != nullptr)
    *why = "the NPU backend library " + path + " has no symbol " + name + " (a mismatched build)";
  return out != nullptr;
}

bool load_api(NpuApi& api, std::string* why) {
  api.path = library_path();
  const bool from_env = std::getenv(kNpuLibraryEnv) != nullptr;
  void* lib = dlopen(api.path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) {
    const char* err = dlerror();
    if (why != nullptr)
      *why = "the NPU backend library " + api.path + " cannot be loaded (" +
             (err ? err : "unknown error") + ")" +
             (from_env ? std::string(" [from $") + kNpuLibraryEnv + "]"
                       : std::string("; it is built only where XRT is installed (XRT_ROOT)"));
    return false;
  }
  XdnaNpuAbiVersionFn version = nullptr;
  if (!resolve(lib, "xdna_npu_abi_version", version, why, api.path)) return false;
  if (version() != XDNA_NPU_ABI_VERSION) {
    if (why != nullptr)
      *why = "the NPU backend library " + api.path + " speaks ABI version " +
             std::to_string(version()) + ", this plugin " + std::to_string(XDNA_NPU_ABI_VERSION);
    return false;
  }
  return resolve(lib, "xdna_npu_open", api.open, why, api.path) &&
         resolve(lib, "xdna_npu_load", api.load, why, api.path) &&
         resolve(lib, "xdna_npu_run", api.run, why, api.path) &&
         resolve(lib, "xdna_npu_unload", api.unload, why, api.path) &&
         resolve(lib, "xdna_npu_close", api.close, why, api.path) &&
         resolve(lib, "xdna_npu_last_error", api.last_error, why, api.path);
}

}  // namespace

NpuDevice::~NpuDevice() {
  if (handle_ != nullptr) api_.close(handle_);
}

std::string NpuDevice::last_error() const {
  const char* e = api_.last_error();
  return e != nullptr && *e != '\0' ? e : "unknown NPU backend error";
}

// The command timeout: $XDNA_EP_NPU_TIMEOUT_MS when set (a bad value is a reason
// not to open, never silently the default), else kNpuTimeoutMs.
bool command_timeout_ms(unsigned int& out, std::string* why) {
  const char* env = std::getenv(kNpuTimeoutEnv);
  if (env == nullptr || *env == '\0') {
    out = kNpuTimeoutMs;
    return true;
  }
  char* end = nullptr;
  const long v = std::strtol(env, &end, 10);
  if (*end != '\0' || v < 1 || v > 3600000) {
    if (why != nullptr)
      *why = std::string("$") + kNpuTimeoutEnv + "='" + env +
             "' is not a command timeout in milliseconds (an integer 1 .. 3600000)";
    return false;
  }
  out = static_cast<unsigned int>(v);
  return true;
}

std::shared_ptr<NpuDevice> open_npu_device(std::string* why) {
  unsigned int timeout_ms = 0;
  if (!command_timeout_ms(timeout_ms, why)) return nullptr;
  NpuApi api;
  if (!load_api(api, why)) return nullptr;
  void* handle = api.open(0, timeout_ms);
  if (handle == nullptr) {
    if (why != nullptr) {
      const char* e = api.last_error();
      *why = e != nullptr && *e != '\0' ? e : "the NPU backend could not open device 0";
    }
    return nullptr;
  }
  return std::make_shared<NpuDevice>(std::move(api), handle);
}

bool npu_backend_available(std::string* why) { return open_npu_device(why) != nullptr; }

std::vector<std::string> xclbin_search_dirs() {
  std::vector<std::string> dirs;
  const char* env = std::getenv(kXclbinDirEnv);
  std::string rest = env != nullptr ? env : "";
  size_t start = 0;
  while (start <= rest.size()) {
    const size_t colon = rest.find(':', start);
    const std::string d = rest.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (!d.empty()) dirs.push_back(d);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  dirs.push_back(plugin_dir() + "/_kernels/xclbin");
  return dirs;
}

}  // namespace xdna::ep
