// Factories of the native stage implementations (one per stage kind); the
// table that maps kernel names and versions to them is in stages.cc.
#pragma once
#include <memory>

#include "runner.h"

namespace xdna::ep {
std::unique_ptr<StageImpl> make_quantize(const StageDef& st);
std::unique_ptr<StageImpl> make_dequantize(const StageDef& st);
std::unique_ptr<StageImpl> make_matmul(const StageDef& st);
std::unique_ptr<StageImpl> make_gelu(const StageDef& st);
std::unique_ptr<StageImpl> make_add(const StageDef& st);
std::unique_ptr<StageImpl> make_layernorm(const StageDef& st);
std::unique_ptr<StageImpl> make_softmax(const StageDef& st);
std::unique_ptr<StageImpl> make_attention(const StageDef& st);
std::unique_ptr<StageImpl> make_conv1d(const StageDef& st);
}  // namespace xdna::ep
