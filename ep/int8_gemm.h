// Internal int8 GEMM core shared by the matmul, attention and conv kernels.
// int8 x int8 products summed in int32 are exact, so every path (portable,
// AVX2, AVX-512 VNNI, AMX) must return identical accumulators.
#pragma once
#include <cstdint>

namespace xdna {

// C[m, n] = sum_k A[m, k] * Bt[n, k]   (int32, exact)
// A: [M, K] row-major with row stride lda; Bt: [N, K] row-major with row stride
// ldb (i.e. B transposed, "NT" layout); C: [M, N] row stride ldc.
// Contract: Bt values lie in [-127, 127] (the project's narrow int8 range);
// A may hold any int8 value. Single-threaded: callers parallelise over rows or
// heads. Dispatches on active_isa().
void gemm_s8s8s32_nt(int M, int N, int K, const int8_t* A, int lda, const int8_t* Bt, int ldb,
                     int32_t* C, int ldc);

// The portable reference path (always built, always tested).
void gemm_s8s8s32_nt_portable(int M, int N, int K, const int8_t* A, int lda, const int8_t* Bt,
                              int ldb, int32_t* C, int ldc);

}  // namespace xdna
