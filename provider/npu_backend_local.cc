// npu_backend_available (npu_probe.h) for a build without the NPU backend's
// sources: the backend is a separate library, libxdna_ep_npu.so (built only
// where XRT is installed), that the plugin loads at run time. Here "available"
// means only that the library file loads; nothing in it is called. When the
// backend's own sources are in the tree, its implementation of this function
// replaces this file.
#include <dlfcn.h>

#include <cstdlib>
#include <string>

#include "npu_probe.h"

namespace xdna::ep {
namespace {

constexpr const char* kBackendLibrary = "libxdna_ep_npu.so";

// $XDNA_EP_NPU_LIBRARY, else libxdna_ep_npu.so in the directory of this library.
std::string backend_library_path() {
  const char* env = std::getenv("XDNA_EP_NPU_LIBRARY");
  if (env != nullptr && *env != '\0') return env;
  Dl_info info{};
  if (::dladdr(reinterpret_cast<void*>(&npu_backend_available), &info) != 0 && info.dli_fname != nullptr) {
    const std::string self(info.dli_fname);
    const auto slash = self.find_last_of('/');
    if (slash != std::string::npos) return self.substr(0, slash + 1) + kBackendLibrary;
  }
  return kBackendLibrary;
}

}  // namespace

bool npu_backend_available(std::string* why) {
  const std::string path = backend_library_path();
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    if (why != nullptr) {
      const char* err = ::dlerror();
      *why = "the NPU backend library " + path + " cannot be loaded (" + (err ? err : "unknown error") +
             "); it is built only where XRT is installed";
    }
    return false;
  }
  ::dlclose(handle);
  if (why != nullptr) why->clear();
  return true;
}

}  // namespace xdna::ep
