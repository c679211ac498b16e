// The stage table: every stage kind the native runner executes, with the
// kernels/manifest.json kernel_version it implements. A new stage kind is one
// entry here (and its stage_<kind>.cc). A stage whose kind or version is not in
// this table fails at Compile with a message naming it (runner.cc).
#include "stages.h"

namespace xdna::ep {

const std::vector<StageEntry>& stage_table() {
  static const std::vector<StageEntry> table = {
      {"quantize", 2, make_quantize},
      {"dequantize", 1, make_dequantize},
      {"matmul", 2, make_matmul},
      {"gelu", 3, make_gelu},
      {"add", 3, make_add},
      {"layernorm", 1, make_layernorm},
      {"softmax", 1, make_softmax},
      {"attention", 1, make_attention},
      {"conv1d", 1, make_conv1d},
  };
  return table;
}

}  // namespace xdna::ep
