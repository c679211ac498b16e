#include "int8_gemm.h"

namespace xdna {

void gemm_s8s8s32_nt_portable(int M, int N, int K, const int8_t* A, int lda, const int8_t* Bt,
                              int ldb, int32_t* C, int ldc) {
  for (int m = 0; m < M; ++m) {
    const int8_t* a = A + static_cast<long>(m) * lda;
    for (int n = 0; n < N; ++n) {
      const int8_t* b = Bt + static_cast<long>(n) * ldb;
      int32_t acc = 0;
      for (int k = 0; k < K; ++k) acc += static_cast<int32_t>(a[k]) * static_cast<int32_t>(b[k]);
      C[static_cast<long>(m) * ldc + n] = acc;
    }
  }
}

}  // namespace xdna
