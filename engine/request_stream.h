// The handle a caller gets for one submitted request: a queue of events that the engine's step
// thread fills and the caller drains, plus cancellation.
//
// Events: for each choice (index 0..n-1), zero or more kToken events, then exactly one kFinish
// event. After the last choice's kFinish the stream is done and delivers nothing more.
//
// A request with prompt_logprobs (serving_engine.h) first gets kPromptLogprobs events: one per
// computed prompt chunk, in order, together covering prompt positions 1 .. prompt length - 1
// exactly once (position 0 has no context and no log-probability), all before any kToken
// event of any choice. They belong to the request, not to one choice: their index is 0 and
// they apply to every choice. A request that ends early (cancelled, error) may get fewer.
//
// Thread-safety: all members are safe to call from any thread. The listener is called on the
// engine's step thread after events are queued, without the stream's lock held; it must be
// quick and must not block (e.g. post a wake-up to an I/O loop).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

#include "engine/finish_reason.h"
#include "engine/sampler.h"

namespace spillway::engine {

struct StreamEvent {
  enum class Kind { kToken, kFinish, kPromptLogprobs };
  Kind kind = Kind::kToken;
  std::int32_t index = 0;  // Choice.

  // kToken: the sampled token and the text it completes (valid UTF-8; may be empty while a
  // multi-byte character or a possible stop string is held back). kFinish: the rest of the
  // text held back until the end (flushed), if any.
  std::int32_t token = -1;
  std::string text;
  std::optional<SampledToken> logprob;  // kToken, when the request asked for log-probabilities.

  // kPromptLogprobs: prompt_logprobs[i] scores the prompt token at position
  // first_position + i given the tokens before it (its `token` is that prompt token; `top`
  // has the request's prompt_top_logprobs alternatives).
  std::int32_t first_position = 0;
  std::vector<SampledToken> prompt_logprobs;

  // kFinish.
  FinishReason finish = FinishReason::kStop;
  Status status;                          // Why, for kCancelled and kError.
  std::int32_t prompt_tokens = 0;         // Prompt length.
  std::int32_t cached_prompt_tokens = 0;  // Of which reused from the prefix cache (first time).
  std::int32_t completion_tokens = 0;     // Tokens generated for this choice.
};

class RequestStream {
 public:
  RequestStream(std::string id, std::int32_t choices);

  [[nodiscard]] const std::string& id() const { return id_; }

  // Waits for the next event; false once the stream is done and drained, or on timeout.
  [[nodiscard]] bool next(StreamEvent& out);
  [[nodiscard]] bool next_for(StreamEvent& out, std::chrono::nanoseconds timeout);
  // Takes every queued event without waiting.
  [[nodiscard]] std::vector<StreamEvent> drain();
  // True once every choice has finished and every event has been taken.
  [[nodiscard]] bool done() const;

  // Asks the engine to stop this request; its blocks are released at the next step and each
  // unfinished choice finishes with kCancelled. Idempotent.
  void cancel();
  [[nodiscard]] bool cancel_requested() const;

  // At most one listener; replaces any earlier one. Called at once if events are queued.
  void set_listener(std::function<void()> listener);

  // Engine side: queue an event (a kFinish event counts down the open choices).
  void push(StreamEvent event);

 private:
  const std::string id_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<StreamEvent> events_;
  std::int32_t open_choices_;
  bool cancel_ = false;
  std::function<void()> listener_;
};

}  // namespace spillway::engine
