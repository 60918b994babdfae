// A fixed pool of worker threads for the forward pass. The threads are created once, at
// construction; `run` hands every thread (the caller included) one share of a job and returns
// when all shares are done. No allocation and no thread creation per call.
//
// Concurrency: `run` must be called from one thread at a time (the engine's step thread); the
// workers wait on a condition variable between jobs. Not for general task submission.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace spillway::engine {

class ThreadPool {
 public:
  // `threads` >= 1 counts the calling thread: ThreadPool(2) starts one extra worker.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  [[nodiscard]] int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls job(i, size()) once for each thread index i in [0, size()), concurrently, and
  // returns when all have returned. `job` must not throw.
  void run(const std::function<void(int thread_index, int thread_count)>& job);

  // Splits [0, n) into size() contiguous ranges and calls fn(begin, end) for each non-empty one.
  // `grain` rounds range boundaries to multiples of it (e.g. a SIMD width or row block).
  void parallel_for(std::int64_t n, std::int64_t grain,
                    const std::function<void(std::int64_t begin, std::int64_t end)>& fn);

 private:
  void worker_loop(int index);

  std::mutex mu_;
  std::condition_variable start_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int, int)>* job_ = nullptr;  // Guarded by mu_.
  std::uint64_t generation_ = 0;                        // Guarded by mu_; bumps per job.
  int pending_ = 0;                                     // Guarded by mu_.
  bool stopping_ = false;                               // Guarded by mu_.
  std::vector<std::thread> workers_;
};

}  // namespace spillway::engine
