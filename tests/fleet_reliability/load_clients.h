// Steady load for the reliability tests: client threads that send requests through the
// gateway back to back until stopped, and what each request came to.
//
// Each request carries a unique X-Request-Id ("<prefix>-<thread>-<n>", which the gateway's
// routing decisions repeat) and records the test's phase when it started and when it ended, so
// a test can tell which requests saw an event (a kill, a drain).
//
// Thread-safety: all methods are safe from any thread; outcomes() is a snapshot.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"

#include "fleet_harness.h"

namespace spillway::reliability {

struct Outcome {
  std::string request_id;
  bool stream = false;
  int phase_started = 0;
  int phase_ended = 0;
  Status transport;  // The client's own error (e.g. its generous timeout): never expected.
  int status = 0;
  std::string body;                 // Non-streaming answers.
  std::vector<std::string> events;  // Streams.
  std::string rest;                 // Stream bytes after the last complete event.
};

// "" when the outcome is acceptable under failures: a non-streaming request answered 200 with a
// choice; a stream answered 200 that ends with [DONE], with at most one error event, right
// before it. Otherwise what is wrong.
[[nodiscard]] std::string judge(const Outcome& outcome);

class LoadClients {
 public:
  enum class Mix { kNonStreaming, kMixed };
  // Starts `threads` clients at once. Mixed: each thread alternates streaming and
  // non-streaming requests (odd threads start with a stream), chat and completions.
  LoadClients(const Fleet& fleet, std::string prefix, int threads, Mix mix, int max_tokens);
  ~LoadClients();  // stop()
  LoadClients(const LoadClients&) = delete;
  LoadClients& operator=(const LoadClients&) = delete;

  // The phase recorded by requests from now on.
  void set_phase(int phase) { phase_.store(phase); }
  // Requests finished that started in `phase` or later.
  [[nodiscard]] std::int64_t finished_since(int phase) const;
  // Lets every thread finish its current request, then joins them. Idempotent.
  void stop();
  [[nodiscard]] std::vector<Outcome> outcomes() const;

 private:
  void run(int thread);

  const Fleet& fleet_;
  const std::string prefix_;
  const Mix mix_;
  const int max_tokens_;
  std::atomic<int> phase_{0};
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::vector<Outcome> outcomes_;  // Guarded by mu_.
  std::vector<std::thread> threads_;
};

}  // namespace spillway::reliability
