// FAKE XRT header for tests (tests/fakes/fake_xrt): NOT XRT. Declares the subset
// of XRT's C++ API that provider/npu/xrt_backend.cc uses, with XRT's signatures.
// The FAKE models host vs device memory: write() changes host bytes, only
// sync(TO_DEVICE) makes them device-visible, only sync(FROM_DEVICE) brings device
// bytes back for read().
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "xrt/xrt_device.h"

// xrt.h in real XRT
enum xclBOSyncDirection {
  XCL_BO_SYNC_BO_TO_DEVICE = 0,
  XCL_BO_SYNC_BO_FROM_DEVICE,
  XCL_BO_SYNC_BO_GMIO_TO_AIE,
  XCL_BO_SYNC_BO_AIE_TO_GMIO,
};

namespace xrt {

using memory_group = uint32_t;

class bo_impl;

class bo {
 public:
  enum class flags : uint32_t {  // the values of XRT's xrt_mem.h
    normal = 0,
    cacheable = 1u << 24,
    device_only = 1u << 28,
    host_only = 1u << 29,
    p2p = 1u << 30,
    svm = 1u << 27,
  };

  bo() = default;
  bo(const xrt::device& device, size_t sz, bo::flags flags, memory_group grp);

  explicit operator bool() const { return handle != nullptr; }
  size_t size() const;
  void sync(xclBOSyncDirection dir, size_t sz, size_t offset);
  void sync(xclBOSyncDirection dir) { sync(dir, size(), 0); }
  void write(const void* src, size_t size, size_t seek);
  void write(const void* src) { write(src, size(), 0); }
  void read(void* dst, size_t size, size_t skip);
  void read(void* dst) { read(dst, size(), 0); }

  const std::shared_ptr<bo_impl>& get_handle() const { return handle; }

 private:
  std::shared_ptr<bo_impl> handle;
};

}  // namespace xrt
