#include "int8_gemm.h"

#include "cpu_features.h"

namespace xdna {

// Dispatcher. ISA-specific implementations are added by the matmul kernel work
// (int8_gemm_avx2.cpp, int8_gemm_avx512.cpp); until a path has its own
// implementation it uses the portable one.
void gemm_s8s8s32_nt(int M, int N, int K, const int8_t* A, int lda, const int8_t* Bt, int ldb,
                     int32_t* C, int ldc) {
  gemm_s8s8s32_nt_portable(M, N, K, A, lda, Bt, ldb, C, ldc);
}

}  // namespace xdna
