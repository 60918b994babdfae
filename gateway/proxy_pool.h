// The gateway's bounded forwarding capacity: at most `slots` requests forwarded at once, and in
// front of them a bounded waiting room ordered by priority class (fleet::AdmissionQueue:
// interactive before standard before batch, FIFO within a class) with a bounded wait.
//
// submit() never blocks. Each submitted task either starts exactly once, handed a Slot, or its
// reject callback runs exactly once instead: when the waiting room is full of equal or higher
// classes (kResourceExhausted), when a higher-class arrival displaces it, when it waited
// longer than max_wait (kDeadlineExceeded), or when the pool stops (kUnavailable). A task
// starts on the submitting thread when a slot is free, otherwise on the thread whose Slot is
// released; it must not block: it starts asynchronous work that holds the Slot until it ends
// (dropping the Slot frees it for the next waiting task). Reject callbacks run without the
// pool's lock, on the submitting thread, the reaper thread or the stopping thread.
//
// Thread-safety: safe for concurrent use. Slots may be released on any thread, also after the
// pool is gone (they then do nothing). The destructor rejects waiting tasks and joins the
// reaper thread; it does not wait for slots in use.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "core/clock.h"
#include "core/status.h"

#include "fleet/admission.h"
#include "fleet/priority.h"

namespace spillway::gateway {

class ProxyPool {
  struct State;

 public:
  // One forwarding slot in use; releasing it (destruction, or reset()) starts the next task.
  class Slot {
   public:
    Slot() = default;
    ~Slot() { reset(); }
    Slot(Slot&& other) noexcept : state_(std::move(other.state_)) {}
    Slot& operator=(Slot&& other) noexcept {
      if (this != &other) {
        reset();
        state_ = std::move(other.state_);
      }
      return *this;
    }
    Slot(const Slot&) = delete;
    Slot& operator=(const Slot&) = delete;
    void reset();

   private:
    friend class ProxyPool;
    explicit Slot(std::weak_ptr<State> state) : state_(std::move(state)) {}
    std::weak_ptr<State> state_;
  };

  using Task = std::function<void(Slot slot)>;
  using Reject = std::function<void(const Error& why)>;

  // REQUIRES: slots >= 1, max_queued >= 1, max_wait > 0; `clock` outlives the pool.
  ProxyPool(std::size_t slots, std::size_t max_queued, Nanos max_wait, const Clock& clock);
  ~ProxyPool();
  ProxyPool(const ProxyPool&) = delete;
  ProxyPool& operator=(const ProxyPool&) = delete;

  void submit(fleet::Priority priority, Task task, Reject reject);

  [[nodiscard]] std::size_t slots() const;
  [[nodiscard]] std::size_t busy() const;
  // Tasks waiting for a slot (read without the pool's lock: a gauge's reading).
  [[nodiscard]] std::size_t queued() const;

 private:
  struct Pending {
    Task task;
    Reject reject;
    TimePoint deadline;
  };
  // Shared with the Slots, which may outlive the pool.
  struct State {
    State(std::size_t slot_count, std::size_t max_queued) : slots(slot_count), queue(max_queued) {}
    // Frees one slot and starts the next waiting task on it, if any.
    static void release(const std::shared_ptr<State>& self);

    const std::size_t slots;
    mutable std::mutex mutex;
    fleet::AdmissionQueue queue;                                // Guarded by mutex.
    std::unordered_map<std::uint64_t, Pending> pending;         // Guarded by mutex; by id.
    std::deque<std::pair<TimePoint, std::uint64_t>> deadlines;  // Guarded; in submit order.
    std::uint64_t next_id = 1;                                  // Guarded by mutex.
    std::size_t busy = 0;                                       // Guarded by mutex.
    bool stopping = false;                                      // Guarded by mutex.
    // queue.size() as of its last change (written under mutex), for queued() without it.
    std::atomic<std::size_t> queued{0};
    // REQUIRES: mutex held; after each change of queue.
    void note_queue() { queued.store(queue.size(), std::memory_order_relaxed); }
    std::condition_variable reap_wake;
  };

  void reap();

  const Nanos max_wait_;
  const Clock& clock_;
  const std::shared_ptr<State> state_;
  std::thread reaper_;
};

}  // namespace spillway::gateway
