// A small persistent thread pool: kernels split their outer tiling loop over
// it. Persistent (not a std::thread per call) because decoder calls are tiny
// (M=1) and thread creation would cost more than the work.
#pragma once
#include <cstddef>
#include <functional>

namespace xdna {

// Number of worker threads kernels use (env XDNA_EP_NUM_THREADS, else the
// hardware concurrency). Set at run time with set_num_threads().
int num_threads();
void set_num_threads(int n);

// Calls fn(begin, end) on disjoint chunks covering [0, n), at most num_threads()
// chunks, each at least `grain` long. Runs inline when one chunk suffices.
// Blocks until every chunk is done. Exceptions from fn are rethrown here.
void parallel_for(std::size_t n, std::size_t grain,
                  const std::function<void(std::size_t, std::size_t)>& fn);

}  // namespace xdna
