// Weight packing and the portable packed kernel (always built, always tested).
#include <cstring>

#include "int8_gemm_epilogue.h"
#include "int8_gemm_packed.h"

namespace xdna {

void pack_b(int K, int N, const int8_t* W, long ldw, bool transposed, int8_t* dst,
            int32_t* colsum) {
  const int Kp = (K + kKGroup - 1) / kKGroup * kKGroup;
  const int Np = (N + kPanelCols - 1) / kPanelCols * kPanelCols;
  std::memset(dst, 0, static_cast<size_t>(Np) * Kp);
  for (int n = 0; n < Np; ++n) colsum[n] = 0;
  if (transposed) {
    // Column n is contiguous in k: move whole k-groups (4 bytes) at a time.
    // (gemm_s8s8s32_nt packs on every call, so this loop is on its hot path.)
    const int full = K / kKGroup;
    for (int n = 0; n < N; ++n) {
      const int8_t* src = W + static_cast<long>(n) * ldw;
      int8_t* out = dst + static_cast<long>(n / kPanelCols) * Kp * kPanelCols +
                    (n % kPanelCols) * kKGroup;
      for (int g = 0; g < full; ++g)
        std::memcpy(out + static_cast<long>(g) * kPanelCols * kKGroup, src + g * kKGroup,
                    kKGroup);
      for (int k = full * kKGroup; k < K; ++k)
        out[static_cast<long>(full) * kPanelCols * kKGroup + (k - full * kKGroup)] = src[k];
      int32_t s = 0;
      for (int k = 0; k < K; ++k) s += src[k];
      colsum[n] = s;
    }
    return;
  }
  for (int n = 0; n < N; ++n) {
    int8_t* panel = dst + static_cast<long>(n / kPanelCols) * Kp * kPanelCols;
    const int c = n % kPanelCols;
    int32_t s = 0;
    for (int k = 0; k < K; ++k) {
      const int8_t v = transposed ? W[static_cast<long>(n) * ldw + k]
                                  : W[static_cast<long>(k) * ldw + n];
      panel[(k / kKGroup) * (kPanelCols * kKGroup) + c * kKGroup + (k % kKGroup)] = v;
      s += v;
    }
    colsum[n] = s;
  }
}

void gemm_packed_portable(const PackedB& b, const int8_t* A, long lda, int m0, int m1, int p0,
                          int p1, const Epilogue& epi) {
  int32_t acc[kPanelCols];
  const int groups = b.Kp / kKGroup;
  for (int p = p0; p < p1; ++p) {
    const int8_t* panel = b.data + static_cast<long>(p) * b.Kp * kPanelCols;
    const int n0 = p * kPanelCols;
    const int cnt = b.N - n0 < kPanelCols ? b.N - n0 : kPanelCols;
    for (int m = m0; m < m1; ++m) {
      const int8_t* a = A + static_cast<long>(m) * lda;
      for (int c = 0; c < kPanelCols; ++c) acc[c] = 0;
      for (int g = 0; g < groups; ++g) {
        const int8_t* bg = panel + g * kPanelCols * kKGroup;
        for (int j = 0; j < kKGroup; ++j) {
          const int k = g * kKGroup + j;
          if (k >= b.K) break;
          const int32_t av = a[k];
          for (int c = 0; c < kPanelCols; ++c) acc[c] += av * bg[c * kKGroup + j];
        }
      }
      apply_epilogue_row(epi, m, n0, cnt, acc);
    }
  }
}

}  // namespace xdna
