// AIE2 (npu1) core functions of the add kernel.
//
// fp32: 16-lane vector adds. AIE2's fp32 vector add rounds to nearest even
// like the host; subnormal handling on the core is not verified on hardware
// (Whisper's residual stream never holds subnormals), see README.
// int8: add.h's integer rescale (int64 products, arithmetic shift), called
// directly per element; it is the contract itself, so it is exact by
// construction. (A 32-lane version would go through the 64-bit accumulators.)
#include <aie_api/aie.hpp>
#include <cstdint>

#include "../add.h"

extern "C" {

// c = a + b on n floats; n a multiple of 16 (the design's tile size).
void xdna_add_f32(const float* __restrict a, const float* __restrict b, float* __restrict c,
                  int32_t n) {
  for (int32_t i = 0; i < n; i += 16) {
    const aie::vector<float, 16> va = aie::load_v<16>(a + i);
    const aie::vector<float, 16> vb = aie::load_v<16>(b + i);
    aie::store_v(c + i, aie::add(va, vb));
  }
}

// params = {ma, mb, shift} from make_add_requant (host, once per program).
void xdna_add_i8(const int8_t* __restrict a, const int8_t* __restrict b, int8_t* __restrict c,
                 const int32_t* __restrict params, int32_t n) {
  const xdna::add::AddRequant r{params[0], params[1], params[2]};
  xdna::add::add_i8_row(a, b, c, static_cast<std::size_t>(n), r);
}

// Dynamic int8: scales = {a_scale, b_scale} as float32 bytes (read from IN); the
// requant integers come from the same builder the host uses (make_add_requant,
// double arithmetic on the core's scalar unit: not verified on hardware), with
// out_scale = dynamic_out_scale(a_scale, b_scale).
void xdna_add_i8_dynamic(const int8_t* __restrict a, const int8_t* __restrict b,
                         int8_t* __restrict c, const int8_t* __restrict scales, int32_t n) {
  float s[2];
  __builtin_memcpy(s, scales, sizeof(s));
  const xdna::add::AddRequant r =
      xdna::add::make_add_requant(s[0], s[1], xdna::add::dynamic_out_scale(s[0], s[1]));
  xdna::add::add_i8_row(a, b, c, static_cast<std::size_t>(n), r);
}

// Dynamic int8: c_scale = float32(a_scale + b_scale), written once (column 0).
void xdna_add_out_scale(const int8_t* __restrict scales, int8_t* __restrict out_scale) {
  float s[2];
  __builtin_memcpy(s, scales, sizeof(s));
  const float so = xdna::add::dynamic_out_scale(s[0], s[1]);
  __builtin_memcpy(out_scale, &so, sizeof(so));
}

}  // extern "C"
