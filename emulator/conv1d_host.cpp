// Host engine of the conv1d kernel (see conv1d_host.h).
#include "conv1d_host.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "../kernels/common/epilogue.h"
#include "../kernels/conv1d/conv1d.h"
#include "../kernels/quantize/quantize.h"
#include "int8_gemm_packed.h"
#include "parallel.h"
#include "quantize.h"

namespace xdna {
namespace {
constexpr int kTileT = 192;  // output positions per GEMM tile (amortises B packing)

}  // namespace

float conv1d_dynamic_in_scale(const float* x, std::size_t n) {
  std::vector<float> part(static_cast<std::size_t>(num_threads()) + 1, 0.0f);
  std::size_t chunk = (n + part.size() - 1) / part.size();
  parallel_for(part.size(), 1, [&](std::size_t b, std::size_t e) {
    for (std::size_t c = b; c < e; ++c) {
      float m = 0.0f;
      const std::size_t lo = c * chunk, hi = std::min(n, lo + chunk);
      for (std::size_t i = lo; i < hi; ++i) {
        const float a = std::fabs(x[i]);
        m = a > m ? a : m;
      }
      part[c] = m;
    }
  });
  float amax = 0.0f;
  for (float m : part) amax = m > amax ? m : amax;
  return quant::dynamic_scale(amax);  // the dynamic quantize kernel's rule
}


bool conv1d_run(const Conv& c, const float* x, float in_scale, const int8_t* w,
              const float* w_scale, const float* bias, float* y) {
  const std::size_t n_in = static_cast<std::size_t>(c.B) * c.Cin * c.T;
  std::vector<int8_t> q(n_in);
  if (!quantize_static(x, n_in, in_scale, q.data())) return false;  // quantize kernel's path
  std::vector<float> scale(c.Cout);
  for (int co = 0; co < c.Cout; ++co) scale[co] = conv1d::out_scale(in_scale, w_scale[co]);
  const int K = c.Cin * c.Kw;
  // Pack the weight ([Cout, K] = B transposed) once for every tile.
  PackedB pb;
  pb.K = K;
  pb.N = c.Cout;
  pb.Kp = (K + kKGroup - 1) / kKGroup * kKGroup;
  pb.Np = (c.Cout + kPanelCols - 1) / kPanelCols * kPanelCols;
  std::vector<int8_t> packed(static_cast<std::size_t>(pb.Np) * pb.Kp);
  std::vector<int32_t> colsum(pb.Np);
  pack_b(K, c.Cout, w, K, /*transposed=*/true, packed.data(), colsum.data());
  pb.data = packed.data();
  pb.colsum = colsum.data();
  const PackedKernel kernel = packed_kernel_for_active_isa();
  const int panels = pb.Np / kPanelCols;
  const int tiles_per_batch = (c.Tout + kTileT - 1) / kTileT;
  const std::size_t tiles = static_cast<std::size_t>(c.B) * tiles_per_batch;
  parallel_for(tiles, 1, [&](std::size_t tb, std::size_t te) {
    std::vector<int8_t> col(static_cast<std::size_t>(kTileT) * K);
    std::vector<int32_t> acc(static_cast<std::size_t>(kTileT) * c.Cout);
    for (std::size_t tile = tb; tile < te; ++tile) {
      const int b = static_cast<int>(tile / tiles_per_batch);
      const int t0 = static_cast<int>(tile % tiles_per_batch) * kTileT;
      const int nt = std::min(kTileT, c.Tout - t0);
      const int8_t* qb = q.data() + static_cast<std::size_t>(b) * c.Cin * c.T;
      for (int t = 0; t < nt; ++t)
        conv1d::im2col_row(qb, c.Cin, c.T, c.Kw, c.stride, c.pad, t0 + t,
                           col.data() + static_cast<std::size_t>(t) * K);
      Epilogue epi;  // kInt32: raw accumulators, the fp32 epilogue follows below
      epi.out = acc.data();
      epi.ldo = c.Cout;
      kernel(pb, col.data(), K, 0, nt, 0, panels, epi);
      float* yb = y + static_cast<std::size_t>(b) * c.Cout * c.Tout;
      for (int co = 0; co < c.Cout; ++co) {
        float* yr = yb + static_cast<std::size_t>(co) * c.Tout + t0;
        for (int t = 0; t < nt; ++t)
          yr[t] = dequantize(acc[static_cast<std::size_t>(t) * c.Cout + co], scale[co], bias[co]);
      }
    }
  });
  return true;
}


}  // namespace xdna
