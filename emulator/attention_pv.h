// Attention's P.V with whole int16 weights (AVX2 path; why and the range
// argument: attention_pv_avx2.cpp). Gives exactly the contract's
// combine(acc_hi, acc_lo) of kernels/attention/attention.h.
#pragma once
#include <cstdint>

namespace xdna {

// Column padding of the int16 V layout: the kernel's register block width.
constexpr int kPv16Cols = 16;

// acc[r * dhp + c] = sum_k w[r * ldw + k] * V[k, c] (int64, overwritten) for rows
// [0, rows) and columns [0, dhp), keys [0, 2 * kpairs). Layouts:
//   w:   int16 weights, row stride ldw (even), zero past the last key;
//   v16: key pairs interleaved per column, v16[(p * dhp + c) * 2 + s] = V[2p + s, c]
//        (zero for padded keys and columns); dhp is a multiple of kPv16Cols.
void attention_pv16_avx2(const int16_t* w, long ldw, int rows, int kpairs, const int16_t* v16,
                         int dhp, int64_t* acc);

}  // namespace xdna
