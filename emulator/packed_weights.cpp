// Packed int8 weights of the host matmul: see packed_weights.h.
#include "packed_weights.h"

namespace xdna {

PackedB PackedWeights::view() const {
  PackedB b;
  b.K = K;
  b.N = N;
  b.Kp = (K + kKGroup - 1) / kKGroup * kKGroup;
  b.Np = (N + kPanelCols - 1) / kPanelCols * kPanelCols;
  b.data = data.data();
  b.colsum = colsum.data();
  return b;
}

void pack_weights(int K, int N, const int8_t* w, long ldw, PackedWeights* out) {
  out->K = K;
  out->N = N;
  const PackedB b = out->view();
  out->data.resize(static_cast<std::size_t>(b.Np) * b.Kp);
  out->colsum.resize(b.Np);
  pack_b(K, N, w, ldw, /*transposed=*/false, out->data.data(), out->colsum.data());
}

bool has_int8_min(const int8_t* p, std::size_t n) {
  unsigned char hit = 0;
  for (std::size_t i = 0; i < n; ++i) hit |= static_cast<unsigned char>(p[i] == -128);
  return hit != 0;
}

}  // namespace xdna
