#include "parallel.h"

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace xdna {
namespace {

int default_threads() {
  if (const char* env = std::getenv("XDNA_EP_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void resize(int n) {
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    stop();
    quit_ = false;
    for (int i = 1; i < std::max(1, n); ++i) workers_.emplace_back([this, i] { loop(i); });
  }

  // Runs job(i) for i in [0, chunks); chunk 0 on the calling thread.
  void run(int chunks, const std::function<void(int)>& job) {
    std::lock_guard<std::mutex> run_lock(run_mutex_);  // one parallel region at a time
    {
      std::lock_guard<std::mutex> lk(m_);
      job_ = &job;
      chunks_ = chunks;
      next_ = 1;
      pending_ = chunks - 1;
      error_ = nullptr;
      ++generation_;
    }
    cv_.notify_all();
    run_chunk(job, 0);
    // The caller also takes chunks the workers have not claimed yet.
    for (;;) {
      int c;
      {
        std::lock_guard<std::mutex> lk(m_);
        if (next_ >= chunks_) break;
        c = next_++;
      }
      run_chunk(job, c);
      std::lock_guard<std::mutex> lk(m_);
      --pending_;
    }
    std::unique_lock<std::mutex> lk(m_);
    done_cv_.wait(lk, [this] { return pending_ == 0; });
    job_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void run_chunk(const std::function<void(int)>& job, int c) {
    try {
      job(c);
    } catch (...) {
      std::lock_guard<std::mutex> lk(m_);
      if (!error_) error_ = std::current_exception();
    }
  }

  void loop(int) {
    unsigned long seen = 0;
    for (;;) {
      const std::function<void(int)>* job;
      int c;
      {
        std::unique_lock<std::mutex> lk(m_);
        cv_.wait(lk, [&] { return quit_ || (generation_ != seen && job_ && next_ < chunks_); });
        if (quit_) return;
        job = job_;
        c = next_++;
        if (next_ >= chunks_) seen = generation_;
      }
      run_chunk(*job, c);
      std::lock_guard<std::mutex> lk(m_);
      if (--pending_ == 0) done_cv_.notify_all();
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(m_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::mutex run_mutex_;
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  const std::function<void(int)>* job_ = nullptr;
  int chunks_ = 0, next_ = 0, pending_ = 0;
  unsigned long generation_ = 0;
  bool quit_ = false;
  std::exception_ptr error_;
};

thread_local bool t_inside_parallel = false;

Pool& pool() {
  static Pool p(default_threads());
  return p;
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int n) { pool().resize(n); }

void parallel_for(std::size_t n, std::size_t grain,
                  const std::function<void(std::size_t, std::size_t)>& fn) {
  if (n == 0) return;
  grain = std::max<std::size_t>(grain, 1);
  std::size_t max_chunks = (n + grain - 1) / grain;
  int chunks = static_cast<int>(std::min<std::size_t>(max_chunks, pool().size()));
  if (chunks <= 1 || t_inside_parallel) {  // nested regions run inline
    fn(0, n);
    return;
  }
  const std::size_t step = (n + chunks - 1) / chunks;
  pool().run(chunks, [&](int c) {
    std::size_t b = static_cast<std::size_t>(c) * step;
    std::size_t e = std::min(n, b + step);
    const bool was_inside = t_inside_parallel;
    t_inside_parallel = true;
    struct Reset { bool v; ~Reset() { t_inside_parallel = v; } } reset{was_inside};
    if (b < e) fn(b, e);
  });
}

}  // namespace xdna
