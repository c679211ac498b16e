// AIE2 (npu1 / Phoenix) kernel source of the int8 matmul tile.
//
// Built by kernels/build_xclbins.py with the MLIR-AIE toolchain (Peano or
// xchesscc) and linked into the core program of kernels/matmul/design.py.
// Not compiled on hosts without that toolchain; the host build of the same
// arithmetic is emulator/int8_gemm_*.cpp, and both share ../matmul.h:
//   * the accumulation is exact int32 (aie::mmul<4, 8, 8, int8, int8> with the
//     default 32-bit accumulator; no shift or saturation before the epilogue:
//     to_vector<int32_t>() without shift), so it equals every host path;
//   * the epilogue is matmul::output_int8 / output_f32 applied per element.
//
// Tile sizes (must match design.py): A tile 32 x 64, B tile 64 x 64, output
// 32 x 64. The DMA blocks the tiles for aie::mmul: A as [m/4][k/8][4][8],
// B as [k/8][n/8][8][8]; the int32 accumulator tile ([m/4][n/8][4][8]) lives
// in this core's own data memory (a static array: every core runs its own
// copy of this object), so the design needs no extra buffer object for it.
#include <stdint.h>

#include <aie_api/aie.hpp>

#include "../matmul.h"

// chess_* loop hints are xchesscc keywords; Peano (llvm-aie) does not know them.
#if !defined(__chess__)
#define chess_prepare_for_pipelining
#endif

namespace {

constexpr unsigned kTileM = 32, kTileK = 64, kTileN = 64;
constexpr unsigned kR = 4, kS = 8, kT = 8;
using MMUL = aie::mmul<kR, kS, kT, int8, int8>;  // acc32: exact for int8 x int8
constexpr unsigned kBlocksM = kTileM / kR, kBlocksK = kTileK / kS, kBlocksN = kTileN / kT;

// Index of output element (row, col) in the blocked accumulator tile.
inline unsigned acc_index(unsigned row, unsigned col) {
  return ((row / kR) * kBlocksN + col / kT) * MMUL::size_C + (row % kR) * kT + col % kT;
}

alignas(32) int32_t g_acc[kTileM * kTileN];

}  // namespace

extern "C" {

void matmul_zero_i32() {
  const aie::vector<int32, 16> z = aie::zeros<int32, 16>();
  for (unsigned i = 0; i < kTileM * kTileN; i += 16) aie::store_v(g_acc + i, z);
}

// acc += A_tile x B_tile (blocked layouts above). 2x2 register blocking of
// mmul tiles: two row blocks times two column blocks per inner loop.
void matmul_i8_i32(const int8_t* __restrict a, const int8_t* __restrict b) {
  int32_t* __restrict acc = g_acc;
  for (unsigned bm = 0; bm < kBlocksM; bm += 2) {
    for (unsigned bn = 0; bn < kBlocksN; bn += 2) {
      int32_t* __restrict c0 = acc + (bm * kBlocksN + bn) * MMUL::size_C;
      int32_t* __restrict c1 = acc + ((bm + 1) * kBlocksN + bn) * MMUL::size_C;
      MMUL c00(aie::load_v<MMUL::size_C>(c0));
      MMUL c01(aie::load_v<MMUL::size_C>(c0 + MMUL::size_C));
      MMUL c10(aie::load_v<MMUL::size_C>(c1));
      MMUL c11(aie::load_v<MMUL::size_C>(c1 + MMUL::size_C));
      const int8_t* __restrict pa0 = a + bm * kBlocksK * MMUL::size_A;
      const int8_t* __restrict pa1 = a + (bm + 1) * kBlocksK * MMUL::size_A;
      const int8_t* __restrict pb0 = b + bn * MMUL::size_B;
      const int8_t* __restrict pb1 = b + (bn + 1) * MMUL::size_B;
      for (unsigned bk = 0; bk < kBlocksK; ++bk) chess_prepare_for_pipelining {
          const aie::vector<int8, MMUL::size_A> a0 = aie::load_v<MMUL::size_A>(pa0);
          const aie::vector<int8, MMUL::size_A> a1 = aie::load_v<MMUL::size_A>(pa1);
          const aie::vector<int8, MMUL::size_B> b0 = aie::load_v<MMUL::size_B>(pb0);
          const aie::vector<int8, MMUL::size_B> b1 = aie::load_v<MMUL::size_B>(pb1);
          pa0 += MMUL::size_A;
          pa1 += MMUL::size_A;
          pb0 += kBlocksN * MMUL::size_B;
          pb1 += kBlocksN * MMUL::size_B;
          c00.mac(a0, b0);
          c01.mac(a0, b1);
          c10.mac(a1, b0);
          c11.mac(a1, b1);
        }
      aie::store_v(c0, c00.template to_vector<int32>());
      aie::store_v(c0 + MMUL::size_C, c01.template to_vector<int32>());
      aie::store_v(c1, c10.template to_vector<int32>());
      aie::store_v(c1 + MMUL::size_C, c11.template to_vector<int32>());
    }
  }
}

// int8 output tile [kTileM][kTileN] row-major. params: int32 [3][kTileN]
// (multiplier, shift, bias_i32) of this tile's output channels.
void matmul_epilogue_i8(const int32_t* __restrict params, int8_t* __restrict y) {
  const int32_t* __restrict acc = g_acc;
  const int32_t* mult = params;
  const int32_t* shift = params + kTileN;
  const int32_t* bias = params + 2 * kTileN;
  for (unsigned r = 0; r < kTileM; ++r)
    for (unsigned c = 0; c < kTileN; ++c)
      y[r * kTileN + c] =
          xdna::matmul::output_int8(acc[acc_index(r, c)], bias[c], mult[c], shift[c]);
}

// float32 output tile [kTileM][kTileN] row-major. params: float32 [2][kTileN]
// (scale, bias) of this tile's output channels.
void matmul_epilogue_f32(const float* __restrict params, float* __restrict y) {
  const int32_t* __restrict acc = g_acc;
  const float* scale = params;
  const float* bias = params + kTileN;
  for (unsigned r = 0; r < kTileM; ++r)
    for (unsigned c = 0; c < kTileN; ++c)
      y[r * kTileN + c] = xdna::matmul::output_f32(acc[acc_index(r, c)], scale[c], bias[c]);
}

}  // extern "C"
