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

// Few-row calls (decoder steps, attention of one new token over a KV cache)
// skip the B packing of the fast paths: below this many rows, packing Bt
// (O(N K)) costs more than the product itself.
constexpr int kSmallM = 8;

// Unpacked few-row paths (M < kSmallM), exact, same contract as above:
// AVX2 multiplies |a| (u8) by sign(b, a) (s8) with vpmaddubsw; AVX-512 VNNI
// uses vpdpbusd on a + 128 and subtracts 128 * sum_k Bt[n, k].
void gemm_nt_small_avx2(int M, int N, int K, const int8_t* A, int lda, const int8_t* Bt, int ldb,
                        int32_t* C, int ldc);
void gemm_nt_small_avx512(int M, int N, int K, const int8_t* A, int lda, const int8_t* Bt,
                          int ldb, int32_t* C, int ldc);

// The portable reference path (always built, always tested).
void gemm_s8s8s32_nt_portable(int M, int N, int K, const int8_t* A, int lda, const int8_t* Bt,
                              int ldb, int32_t* C, int ldc);

}  // namespace xdna
