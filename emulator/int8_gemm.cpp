// Dispatcher of the int8 GEMM paths (portable | avx2 | avx512_vnni) and the
// thread-pool tiling of the packed GEMM used by the matmul kernel.
#include "int8_gemm.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "cpu_features.h"
#include "int8_gemm_packed.h"
#include "parallel.h"

namespace xdna {

PackedKernel packed_kernel_for_active_isa() {
#if !defined(XDNA_NO_X86_PATHS)
  switch (active_isa()) {
    case Isa::kAmx:  // AMX has no dedicated path yet; its CPUs all have AVX-512 VNNI
    case Isa::kAvx512Vnni:
      return &gemm_packed_avx512;
    case Isa::kAvx2:
      return &gemm_packed_avx2;
    default:
      break;
  }
#endif
  return &gemm_packed_portable;
}

void gemm_packed_parallel(const PackedB& b, const int8_t* A, long lda, int M,
                          const Epilogue& epi) {
  if (M <= 0 || b.N <= 0) return;
  const PackedKernel kernel = packed_kernel_for_active_isa();
  const int panels = b.Np / kPanelCols;
  const int threads = std::max(1, num_threads());
  // 96 rows: a multiple of both register blocks (6 and 4 rows); 96 x K bytes
  // of A stay in L2 while the block sweeps its panels.
  constexpr int kRowBlock = 96;
  const int mblocks = (M + kRowBlock - 1) / kRowBlock;
  // Few row blocks (decoder GEMV, short inputs): split the columns too so that
  // every core gets work; 4 tasks per thread evens out the chunk sizes.
  int ngroups = 1;
  if (mblocks < 4 * threads) ngroups = std::min(panels, (4 * threads + mblocks - 1) / mblocks);
  const int per_group = (panels + ngroups - 1) / ngroups;
  ngroups = (panels + per_group - 1) / per_group;
  const std::size_t tasks = static_cast<std::size_t>(mblocks) * ngroups;
  // Each pool thread pulls tasks from a shared counter instead of taking a
  // fixed half: on a loaded machine (or when a worker wakes late) the busy
  // thread does not leave the other waiting at the end.
  // Tiny products (decoder steps on small layers) run inline: waking the
  // pool costs more than the work.
  const double macs = static_cast<double>(M) * b.Kp * b.Np;
  const std::size_t workers =
      macs < (1 << 18) ? 1 : std::min<std::size_t>(static_cast<std::size_t>(threads), tasks);
  std::atomic<std::size_t> next{0};
  parallel_for(workers, 1, [&](std::size_t, std::size_t) {
    for (std::size_t t = next++; t < tasks; t = next++) {
      const int mb = static_cast<int>(t / ngroups), ng = static_cast<int>(t % ngroups);
      const int m0 = mb * kRowBlock, m1 = std::min(M, m0 + kRowBlock);
      const int p0 = ng * per_group, p1 = std::min(panels, p0 + per_group);
      kernel(b, A, lda, m0, m1, p0, p1, epi);
    }
  });
}

void gemm_s8s8s32_nt(int M, int N, int K, const int8_t* A, int lda, const int8_t* Bt, int ldb,
                     int32_t* C, int ldc) {
  if (M <= 0 || N <= 0) return;
  const Isa isa = active_isa();
  if (isa == Isa::kPortable || K <= 0) {
    gemm_s8s8s32_nt_portable(M, N, K, A, lda, Bt, ldb, C, ldc);
    return;
  }
#if !defined(XDNA_NO_X86_PATHS)
  // No packing for few rows; nor for few columns (one or two panels), where the
  // packed kernel's column blocking gains little over the unpacked rows up to
  // 4 * kSmallM rows (measured: kernels/matmul/README.md).
  if (M < kSmallM || (N <= 2 * kPanelCols && M <= 4 * kSmallM)) {
    if (isa == Isa::kAvx2) gemm_nt_small_avx2(M, N, K, A, lda, Bt, ldb, C, ldc);
    else gemm_nt_small_avx512(M, N, K, A, lda, Bt, ldb, C, ldc);
    return;
  }
#endif
  // Fast paths want the panel layout: pack B once per call (O(N K), small
  // next to the O(M N K) product) into a per-thread scratch buffer.
  thread_local std::vector<int8_t> packed;
  thread_local std::vector<int32_t> colsum;
  PackedB b;
  b.K = K;
  b.N = N;
  b.Kp = (K + kKGroup - 1) / kKGroup * kKGroup;
  b.Np = (N + kPanelCols - 1) / kPanelCols * kPanelCols;
  packed.resize(static_cast<std::size_t>(b.Np) * b.Kp);
  colsum.resize(b.Np);
  pack_b(K, N, Bt, ldb, /*transposed=*/true, packed.data(), colsum.data());
  b.data = packed.data();
  b.colsum = colsum.data();
  Epilogue epi;
  epi.kind = EpilogueKind::kInt32;
  epi.out = C;
  epi.ldo = ldc;
  packed_kernel_for_active_isa()(b, A, lda, 0, M, 0, b.Np / kPanelCols, epi);
}

}  // namespace xdna
