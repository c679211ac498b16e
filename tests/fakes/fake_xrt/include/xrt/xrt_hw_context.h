// FAKE XRT header for tests (tests/fakes/fake_xrt): NOT XRT. Declares the subset
// of XRT's C++ API that provider/npu/xrt_backend.cc uses, with XRT's signatures.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "xrt/xrt_device.h"
#include "xrt/xrt_uuid.h"

namespace xrt {

class hw_context_impl;

class hw_context {
 public:
  using cfg_param_type = std::map<std::string, uint32_t>;

  hw_context() = default;
  hw_context(const xrt::device& device, const xrt::uuid& xclbin_id,
             const cfg_param_type& cfg_param = cfg_param_type{});

  const std::shared_ptr<hw_context_impl>& get_handle() const { return handle; }

 private:
  std::shared_ptr<hw_context_impl> handle;
};

}  // namespace xrt
