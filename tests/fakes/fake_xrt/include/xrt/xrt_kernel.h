// FAKE XRT header for tests (tests/fakes/fake_xrt): NOT XRT. Declares the subset
// of XRT's C++ API that provider/npu/xrt_backend.cc uses, with XRT's signatures.
// A started run is executed by the FAKE hardware (tests/fakes/fake_hardware.py)
// through the host process's Python interpreter.
#pragma once
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>

#include "xrt/xrt_bo.h"
#include "xrt/xrt_device.h"
#include "xrt/xrt_hw_context.h"

// ert.h in real XRT
enum ert_cmd_state {
  ERT_CMD_STATE_NEW = 1,
  ERT_CMD_STATE_QUEUED = 2,
  ERT_CMD_STATE_RUNNING = 3,
  ERT_CMD_STATE_COMPLETED = 4,
  ERT_CMD_STATE_ERROR = 5,
  ERT_CMD_STATE_ABORT = 6,
  ERT_CMD_STATE_SUBMITTED = 7,
  ERT_CMD_STATE_TIMEOUT = 8,
  ERT_CMD_STATE_NORESPONSE = 9,
  ERT_CMD_STATE_SKERROR = 10,
  ERT_CMD_STATE_SKCRASHED = 11,
  ERT_CMD_STATE_MAX,
};

namespace xrt {

class kernel;
class kernel_impl;
class run_impl;

class run {
 public:
  run() = default;
  explicit run(const kernel& krnl);

  void start();
  ert_cmd_state abort();
  ert_cmd_state wait(const std::chrono::milliseconds& timeout = std::chrono::milliseconds{0}) const;
  ert_cmd_state wait(unsigned int timeout_ms) const {
    return wait(timeout_ms * std::chrono::milliseconds{1});
  }
  ert_cmd_state state() const;

  explicit operator bool() const { return handle != nullptr; }

  template <typename ArgType>
  void set_arg(int index, ArgType&& arg) {
    set_arg_at_index(index, &arg, sizeof(arg));
  }
  void set_arg(int index, xrt::bo& boh) { set_arg_at_index(index, boh); }
  void set_arg(int index, const xrt::bo& boh) { set_arg_at_index(index, boh); }
  void set_arg(int index, xrt::bo&& boh) { set_arg_at_index(index, boh); }

 private:
  std::shared_ptr<run_impl> handle;
  void set_arg_at_index(int index, const void* value, size_t bytes);
  void set_arg_at_index(int index, const xrt::bo&);
};

class kernel {
 public:
  kernel() = default;
  kernel(const xrt::hw_context& ctx, const std::string& name);
  int group_id(int argno) const;

  const std::shared_ptr<kernel_impl>& get_handle() const { return handle; }

 private:
  std::shared_ptr<kernel_impl> handle;
};

}  // namespace xrt
