// Packed-weight int8 GEMM with a fused epilogue: the engine of the matmul
// kernel (and of gemm_s8s8s32_nt, which packs its B operand on the fly).
//
// Why one packed layout for every ISA: weights are packed once per program
// load, and the kernel path can be switched at run time (tests do), so the
// layout must not depend on the path. The layout below serves AVX-512 VNNI
// (4 zmm of 16 columns x 4 k per k-group), AVX2 (8 ymm of 8 columns x 4 k)
// and the portable loop alike.
//
// Layout: K is padded to Kp = round_up(K, 4) and N to Np = round_up(N, 64)
// with zeros; panel p holds columns [64p, 64p+64):
//   packed[p*Kp*64 + g*256 + c*4 + j] = W[4g + j, 64p + c]
// colsum[n] = sum_k W[k, n] (int32) lets the VNNI path turn its u8 x s8 dot
// products back into s8 x s8 ones.
//
// ISA translation units (*_avx2.cpp, *_avx512.cpp) use no STL: inline STL
// templates instantiated with AVX-512 flags could be merged by the linker into
// code that a portable caller runs on an AVX2-only CPU.
#pragma once
#include <cstdint>

namespace xdna {

constexpr int kPanelCols = 64;  // NR of the packed layout
constexpr int kKGroup = 4;      // k values interleaved per column
// Largest K for which |acc| + |int32 bias| stays below 2^31 (see README).
constexpr int kMaxK = 65536;
constexpr int32_t kMaxBiasI32 = 1 << 30;

struct PackedB {
  int K = 0, N = 0, Kp = 0, Np = 0;
  const int8_t* data = nullptr;    // Np * Kp bytes
  const int32_t* colsum = nullptr;  // Np values (zero beyond N)
};

enum class EpilogueKind : int { kInt32 = 0, kRequantInt8 = 1, kDequantF32 = 2 };

// Per-column epilogue (THE shared epilogue of kernels/common/epilogue.h):
//   kInt32:       out[m, n] = acc
//   kRequantInt8: out[m, n] = requantize(acc + bias_i32[n], {mult[n], shift[n]})
//   kDequantF32:  out[m, n] = dequantize(acc, scale[n], bias_f32[n])
struct Epilogue {
  EpilogueKind kind = EpilogueKind::kInt32;
  void* out = nullptr;
  long ldo = 0;  // row stride of out, in elements
  const int32_t* mult = nullptr;
  const int32_t* shift = nullptr;
  const int32_t* bias_i32 = nullptr;
  const float* scale = nullptr;
  const float* bias_f32 = nullptr;
  // Split outputs (fused q/k/v projections): when nsplit > 0, columns
  // [split_start[j], split_start[j + 1]) go to split_out[j], a row-major
  // [M, split_start[j + 1] - split_start[j]] array, and `out`/`ldo` are unused.
  // The blocks are written directly: no full-width temporary, no copy.
  int nsplit = 0;
  const int* split_start = nullptr;  // nsplit + 1 ascending bounds, [0] = 0, [nsplit] = N
  void* const* split_out = nullptr;  // nsplit arrays of the epilogue's element type
};

// Packs W ([K, N] with row stride ldw, or transposed: element (k, n) at
// Wt[n * ldw + k] when transposed) into `dst` (Np * Kp bytes) and colsum (Np).
void pack_b(int K, int N, const int8_t* W, long ldw, bool transposed, int8_t* dst,
            int32_t* colsum);

// Computes rows [m0, m1) x panels [p0, p1) of A[M, K] (row stride lda) times
// the packed B, and applies the epilogue. Single-threaded; callers split work.
using PackedKernel = void (*)(const PackedB& b, const int8_t* A, long lda, int m0, int m1,
                              int p0, int p1, const Epilogue& epi);

void gemm_packed_portable(const PackedB& b, const int8_t* A, long lda, int m0, int m1, int p0,
                          int p1, const Epilogue& epi);
void gemm_packed_avx2(const PackedB& b, const int8_t* A, long lda, int m0, int m1, int p0,
                      int p1, const Epilogue& epi);
void gemm_packed_avx512(const PackedB& b, const int8_t* A, long lda, int m0, int m1, int p0,
                        int p1, const Epilogue& epi);

// The kernel for the active ISA (cpu_features.h).
PackedKernel packed_kernel_for_active_isa();

// Whole GEMM on the thread pool: tiles over M, and over N panels when M is
// small (a GEMV must still use every core). Releases nothing: no Python here.
void gemm_packed_parallel(const PackedB& b, const int8_t* A, long lda, int M, const Epilogue& epi);

}  // namespace xdna
