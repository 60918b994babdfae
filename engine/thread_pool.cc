#include "engine/thread_pool.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>

namespace spillway::engine {
namespace {

// How long an idle worker spins before it sleeps.
constexpr auto kSpinFor = std::chrono::microseconds(2000);
// Spinning past this long (a job's share or a wake-up is late, most likely because the other
// thread is not running: more runnable threads than cores) yields the core between polls, so
// the thread being waited for can run sooner.
constexpr auto kYieldAfter = std::chrono::microseconds(50);
constexpr int kPollsPerClockRead = 64;

inline void cpu_relax() {
  _mm_pause();
}

// Waits until done() holds: pause-spins first, then yields between polls.
template <typename Done>
void spin_until(Done done) {
  int polls = 0;
  std::chrono::steady_clock::time_point yield_from{};
  while (!done()) {
    cpu_relax();
    if (++polls % kPollsPerClockRead != 0) continue;
    const auto now = std::chrono::steady_clock::now();
    if (polls == kPollsPerClockRead) {
      yield_from = now + kYieldAfter;
    } else if (now > yield_from) {
      std::this_thread::yield();
    }
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  const int extra = std::max(threads, 1) - 1;
  workers_.reserve(static_cast<std::size_t>(extra));
  for (int i = 0; i < extra; ++i)
    workers_.emplace_back([this, i] { worker_loop(i + 1); });
}

ThreadPool::~ThreadPool() {
  stopping_.store(true);
  { std::lock_guard lock(mu_); }
  wake_cv_.notify_all();
  for (std::thread& t : workers_)
    t.join();
}

void ThreadPool::worker_loop(int index) {
  std::uint64_t seen = 0;
  for (;;) {
    // Spin briefly for the next job, then sleep until run() wakes us.
    const auto start = std::chrono::steady_clock::now();
    const auto sleep_at = start + kSpinFor;
    const auto yield_at = start + kYieldAfter;
    int polls = 0;
    while (generation_.load(std::memory_order_acquire) == seen && !stopping_.load()) {
      cpu_relax();
      if (++polls % kPollsPerClockRead != 0) continue;
      const auto now = std::chrono::steady_clock::now();
      if (now > yield_at) std::this_thread::yield();
      if (now > sleep_at) {
        std::unique_lock lock(mu_);
        sleepers_.fetch_add(1);  // seq_cst: pairs with run()'s bump-then-check.
        wake_cv_.wait(lock, [&] { return generation_.load() != seen || stopping_.load(); });
        sleepers_.fetch_sub(1);
        break;
      }
    }
    if (stopping_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    (*job_.load(std::memory_order_acquire))(index, size());
    pending_.fetch_sub(1, std::memory_order_release);
  }
}

void ThreadPool::run(const std::function<void(int, int)>& job) {
  if (workers_.empty()) {
    job(0, 1);
    return;
  }
  job_.store(&job, std::memory_order_relaxed);
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
  generation_.fetch_add(1);  // seq_cst: publishes job_ and pending_.
  if (sleepers_.load() > 0) {
    std::lock_guard lock(mu_);
    wake_cv_.notify_all();
  }
  job(0, size());
  spin_until([&] { return pending_.load(std::memory_order_acquire) == 0; });
}

void ThreadPool::parallel_for(std::int64_t n, std::int64_t grain,
                              const std::function<void(std::int64_t, std::int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<std::int64_t>(grain, 1);
  const std::int64_t units = (n + grain - 1) / grain;
  if (units == 1 || workers_.empty()) {
    fn(0, n);
    return;
  }
  run([&](int i, int count) {
    const std::int64_t begin = std::min(n, units * i / count * grain);
    const std::int64_t end = std::min(n, units * (i + 1) / count * grain);
    if (begin < end) fn(begin, end);
  });
}

}  // namespace spillway::engine
