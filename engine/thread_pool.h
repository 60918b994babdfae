// A fixed pool of worker threads for the forward pass. The threads are created once, at
// construction; `run` hands every thread (the caller included) one share of a job and returns
// when all shares are done. No allocation and no thread creation per call.
//
// Concurrency: `run` must be called from one thread at a time (the engine's step thread).
// Between jobs the workers spin for a short while (a decode step issues a job every few tens
// of microseconds, and waking a sleeping thread costs about as much), then sleep on a
// condition variable, so an idle engine uses no CPU. The caller spins while it waits for the
// workers to finish a job. Not for general task submission.
#pragma once

#include <atomic>
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

  // The job of the current generation; written by run() before it bumps generation_.
  std::atomic<const std::function<void(int, int)>*> job_{nullptr};
  std::atomic<std::uint64_t> generation_{0};  // Bumped once per job (release).
  std::atomic<int> pending_{0};               // Workers still running the current job.
  std::atomic<int> sleepers_{0};              // Workers blocked on wake_cv_.
  std::atomic<bool> stopping_{false};
  std::mutex mu_;  // Only for sleeping and waking.
  std::condition_variable wake_cv_;
  std::vector<std::thread> workers_;
};

}  // namespace spillway::engine
