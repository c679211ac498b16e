// FAKE XRT header for tests (tests/fakes/fake_xrt): NOT XRT. Declares the subset
// of XRT's C++ API that provider/npu/xrt_backend.cc uses, with XRT's signatures.
// The FAKE reads the FAKE xclbin format of tests/fakes/fake_hardware.py (JSON).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "xrt/xrt_uuid.h"

namespace xrt {

class xclbin_impl;

class xclbin {
 public:
  class kernel {
   public:
    kernel() = default;
    explicit kernel(std::string name) : name_(std::move(name)) {}  // FAKE constructor
    std::string get_name() const { return name_; }

   private:
    std::string name_;
  };

  xclbin() = default;
  explicit xclbin(const std::string& filename);
  std::vector<kernel> get_kernels() const;
  uuid get_uuid() const;

  const std::shared_ptr<xclbin_impl>& get_handle() const { return handle; }

 private:
  std::shared_ptr<xclbin_impl> handle;
};

}  // namespace xrt
