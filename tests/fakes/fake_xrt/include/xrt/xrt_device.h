// FAKE XRT header for tests (tests/fakes/fake_xrt): NOT XRT. Declares the subset
// of XRT's C++ API that provider/npu/xrt_backend.cc uses, with XRT's signatures.
#pragma once
#include <memory>

#include "xrt/xrt_uuid.h"

namespace xrt {

class xclbin;
class device_impl;

class device {
 public:
  device() = default;
  explicit device(unsigned int didx);
  uuid register_xclbin(const xrt::xclbin& xclbin);

  const std::shared_ptr<device_impl>& get_handle() const { return handle; }

 private:
  std::shared_ptr<device_impl> handle;
};

}  // namespace xrt
