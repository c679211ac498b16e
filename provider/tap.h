// Region taps: a C entry point for xdna-ep's own measuring tools (`bench accuracy`'s
// region observer, the self-test's twin), which need every region call's inputs and
// outputs in Python while the region runs in this library.
//
//   XdnaEpTapRegister(callback, user) -> token (> 0)
//   XdnaEpTapUnregister(token)
//
// A session whose config has `ep.xdnaexecutionprovider.tap=<token>` (an internal
// option, docs/PROVIDER_OPTIONS.md) calls the callback after each region compute
// with the region's EPContext node name and its inputs and outputs in program order
// (read-only views, valid during the call). A non-zero return fails that run with an
// error naming the tap. A session without the option pays one zero check per call.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "runner.h"

extern "C" {

// One tensor handed to a tap: its program name, ONNX element type
// (ONNXTensorElementDataType: 1 float, 2 uint8, 3 int8, 6 int32, 7 int64), shape, data.
struct XdnaEpTapTensor {
  const char* name;
  int32_t elem_type;
  size_t rank;
  const int64_t* shape;
  const void* data;
};

// Returns 0 to go on; anything else fails the run (the tap recorded why).
typedef int (*XdnaEpTapFn)(void* user, const char* region, size_t n_inputs,
                           const XdnaEpTapTensor* inputs, size_t n_outputs,
                           const XdnaEpTapTensor* outputs);
}

namespace xdna::ep {

// Calls the tap registered under `token` (which must be non-zero) with one region
// call; throws std::runtime_error when the token is unknown or the tap fails.
void call_tap(uint64_t token, const std::string& region, const std::vector<IoSpec>& in_specs,
              const std::vector<Buffer>& inputs, const std::vector<IoSpec>& out_specs,
              const std::vector<Buffer>& outputs);

// Whether a tap is registered under `token` (the option is checked when a session starts).
bool tap_registered(uint64_t token);

}  // namespace xdna::ep
