// Core object of the fused ln_matmul design: the stage kernels' AIE sources,
// unchanged, in one object (each stage runs exactly its own kernel's code).
// The LN core calls xdna_layernorm (fp32 in, int8 out); the MM core
// matmul_zero_i32 / matmul_i8_i32 / matmul_epilogue_* on A tiles streamed back
// from OUT (design.py says why). The dynamic form (design.py build_dynamic) adds
// the on-array scale reduction (common/aie/dynamic_scale_aie.cc) and two shims.
#include "../../common/aie/dynamic_scale_aie.cc"
#include "../../layernorm/aie/layernorm_aie.cc"
#include "../../matmul/aie/matmul_aie.cc"

namespace {
alignas(32) float g_dyn_words[2 * 64];
}  // namespace

extern "C" {

// The layernorm stage with a float32 output (mode 0: fp32 in, fp32 out), under its
// own symbol so the design can declare a float32 y next to the int8 entry point.
void xdna_layernorm_f32(const float* __restrict x, const float* __restrict gb,
                        float* __restrict y, const float* __restrict scal, int32_t rows,
                        int32_t C) {
  xdna_layernorm(x, gb, y, scal, rows, C, 0);
}

// The dynamic matmul's float32 epilogue (kernels/matmul/README.md): words = (w_scale,
// bias) of this tile's 64 channels; scale[n] = a_scale * w_scale[n] (one fp32
// multiply, what the host runtime computes for the one-stage design), a_scale being
// the reducer's params[0]; then exactly matmul_epilogue_f32.
void ln_matmul_epilogue_f32_dyn(const float* __restrict words, const float* __restrict params,
                                float* __restrict y) {
  const float a_scale = params[0];
  for (unsigned c = 0; c < 64; ++c) {
    g_dyn_words[c] = a_scale * words[c];
    g_dyn_words[64 + c] = words[64 + c];
  }
  matmul_epilogue_f32(g_dyn_words, y);
}

}  // extern "C"
