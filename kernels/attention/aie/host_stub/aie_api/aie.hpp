// Scalar host stand-in for the few aie_api calls the xdna-ep AIE core sources
// use (vector/accum types, load_v/store_v, mul/mac, to_vector/from_vector,
// reduce_add, max/reduce_max, add). NOT the AMD library: it exists only so the
// tests can compile aie/*_aie.cc on the host and check, through the designs'
// per-core schedules, that the core code produces the emulator's bytes.
// Integer lanes are exact here as on AIE2 (acc32 lanes never overflow in
// these kernels), so the check is about the code, not the vector unit.
#pragma once
#include <algorithm>
#include <cstdint>

struct acc32 {};

namespace aie {

template <typename T, int N>
struct vector {
  T v[N];
};

template <typename Tag, int N>
struct accum {
  int64_t v[N];
  template <typename T>
  vector<T, N> to_vector(int shift = 0) const {
    vector<T, N> r;
    for (int i = 0; i < N; ++i) r.v[i] = static_cast<T>(v[i] >> shift);
    return r;
  }
  template <typename T>
  void from_vector(const vector<T, N>& x) {
    for (int i = 0; i < N; ++i) v[i] = x.v[i];
  }
};

template <int N, typename T>
vector<T, N> load_v(const T* p) {
  vector<T, N> r;
  for (int i = 0; i < N; ++i) r.v[i] = p[i];
  return r;
}

template <typename T, int N>
void store_v(T* p, const vector<T, N>& x) {
  for (int i = 0; i < N; ++i) p[i] = x.v[i];
}

template <typename T, int N>
accum<acc32, N> mul(const vector<T, N>& a, const vector<T, N>& b) {
  accum<acc32, N> r;
  for (int i = 0; i < N; ++i) r.v[i] = int64_t{a.v[i]} * b.v[i];
  return r;
}

template <typename T, int N>
accum<acc32, N> mac(accum<acc32, N> r, const vector<T, N>& a, const vector<T, N>& b) {
  for (int i = 0; i < N; ++i) r.v[i] += int64_t{a.v[i]} * b.v[i];
  return r;
}

template <typename T, int N>
accum<acc32, N> mac(accum<acc32, N> r, const vector<T, N>& a, T s) {
  for (int i = 0; i < N; ++i) r.v[i] += int64_t{a.v[i]} * s;
  return r;
}

template <typename T, int N>
T reduce_add(const vector<T, N>& a) {
  T s = 0;
  for (int i = 0; i < N; ++i) s += a.v[i];
  return s;
}

template <typename T, int N>
vector<T, N> max(const vector<T, N>& a, const vector<T, N>& b) {
  vector<T, N> r;
  for (int i = 0; i < N; ++i) r.v[i] = std::max(a.v[i], b.v[i]);
  return r;
}

// lane-wise sum (fp32 lanes: one IEEE add each, as xdna_add_f32 needs)
template <typename T, int N>
vector<T, N> add(const vector<T, N>& a, const vector<T, N>& b) {
  vector<T, N> r;
  for (int i = 0; i < N; ++i) r.v[i] = a.v[i] + b.v[i];
  return r;
}

template <typename T, int N>
T reduce_max(const vector<T, N>& a) {
  T m = a.v[0];
  for (int i = 1; i < N; ++i) m = std::max(m, a.v[i]);
  return m;
}

}  // namespace aie
