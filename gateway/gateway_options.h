// Settings of the gateway. Every limit is explicit; validate() names the field that is out of
// range.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

#include "openai/api_limits.h"

#include "fleet/routing.h"

namespace spillway::gateway {

struct GatewayOptions {
  // Sent to replicas as "Authorization: Bearer <key>"; replicas list it among their trusted
  // keys so that they accept the X-Spillway-* headers. Empty: no Authorization header.
  std::string internal_api_key;
  // Tuning of the fleet's routing policy (primary provider, saturation thresholds, weights).
  fleet::RoutingOptions routing;
  // Limits on client request bodies (as `spillway serve` applies them).
  openai::ApiLimits limits;

  // Replicas tried per request (the first one and failovers), [1, 16].
  std::int32_t max_attempts = 3;
  // Requests forwarded at once (worker threads), [1, 4096]; beyond it requests wait.
  std::int32_t max_inflight = 64;
  // Requests waiting for a worker, ordered by priority class, [1, 1'000'000]; beyond it 503.
  std::size_t max_queued = 1024;
  // Longest wait for a worker before 503 with Retry-After, > 0.
  std::chrono::milliseconds max_queue_wait{10'000};

  // Upstream timeouts (net::HttpClient): connecting; the longest silence from a replica (also
  // between two streamed tokens); the whole call.
  std::chrono::milliseconds connect_timeout{2'000};
  std::chrono::milliseconds io_timeout{60'000};
  std::chrono::milliseconds request_timeout{600'000};
  // A non-streaming upstream response body, and one event of a streamed one.
  std::size_t max_response_bytes = 32u << 20;
  std::size_t max_event_bytes = 4u << 20;
  // Bytes written to a slow client and not yet sent before the relay waits for it (at most
  // io_timeout, then the request is abandoned as a disconnect).
  std::size_t max_client_buffer_bytes = 256u << 10;

  // Upper bound of prompt tokens for quota reservations: every token stands for at least one
  // byte of text, plus this allowance for the chat template per message and per request
  // (special tokens, role headers, BOS).
  std::int64_t message_overhead_tokens = 16;
  std::int64_t request_overhead_tokens = 16;

  // Routing decisions kept for GET /v1/gateway/decisions, [1, 100'000].
  std::size_t decisions_kept = 256;
  // Retry-After (seconds) on the gateway's own 503s, [1, 3600].
  std::int32_t retry_after_s = 1;
  // Seeds the routing policy's tie-breaking (one generator per worker thread).
  std::uint64_t seed = 0x5eed'6a7e'3a11ull;

  [[nodiscard]] Status validate() const;
};

}  // namespace spillway::gateway
