// Forwarding one admitted request to the fleet: choose a replica with the routing policy, send
// the request with net::HttpClient, relay the answer to the client's ResponseWriter, and fail
// over to another replica when one fails before the client saw any byte.
//
// Failover: an attempt fails when the replica cannot be reached or breaks the connection
// (connect refused/reset, timeout, truncated answer: reported to the ReplicaSource, which
// ejects the replica), or answers 429 or 5xx (not reported: the replica is alive but busy).
// Then the next attempt excludes every replica tried, up to max_attempts; the client sees only
// the final answer. When all attempts fail the client gets the last replica's answer (429/5xx)
// or 503 with Retry-After.
//
// Streams: events are relayed one by one as they arrive; the response to the client starts
// with the first event, so a replica that fails before its first event is retried invisibly.
// After that a failure cannot be retried (the client has part of one answer): the stream ends
// with an error event (openai::render_error_body) and "data: [DONE]". The replica is always
// asked for usage (stream_options.include_usage, set by the caller); the usage chunk and the
// "usage":null members are removed when the client did not ask for them.
//
// Cancellation: when the client disconnects, the relay aborts the upstream call, which closes
// the connection to the replica, which cancels the generation. This holds at every stage: while
// events flow, and while the replica is still silent (a non-streaming answer being generated, a
// stream waiting for its first token), where the upstream call polls the client's state every
// net::HttpClientOptions::abort_poll_interval.
//
// Load overlay: the policy sees each replica's reported load with the gateway's own
// outstanding requests folded in (outstanding requests the replica does not report yet count
// as waiting), so a burst between two load reports does not all land on one replica.
//
// Thread-safety: run() is called concurrently from the worker threads, each with its own
// worker index (its own HTTP clients and random generator).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/random.h"

#include "net/response_writer.h"
#include "openai/response_types.h"

#include "fleet/routing.h"
#include "gateway/decision_log.h"
#include "gateway/gateway_metrics.h"
#include "gateway/gateway_options.h"
#include "gateway/replica_source.h"

namespace spillway::gateway {

struct ProxyOutcome {
  int status = 0;                      // What the client got; 499 when it went away first.
  std::optional<openai::Usage> usage;  // As the replica reported it.
  bool output_started = false;         // Stream: events reached the client.
  std::int64_t events = 0;             // Stream events relayed to the client.
  std::string replica;                 // Who answered (last attempt).
};

struct ProxyCall {
  std::string path;  // "/v1/chat/completions" or "/v1/completions".
  std::string body;  // What the replica receives.
  bool stream = false;
  bool client_wants_usage = false;  // Stream: the client's stream_options.include_usage.
  fleet::RouteRequest route;        // exclude is filled by the proxy.
  std::string request_id;
  std::string shared_cache_namespace;  // Non-empty: sent as X-Spillway-Cache-Namespace.
  net::ResponseWriter writer;
  // Called once per run(), with the final outcome, before the response is completed (before
  // the last bytes of it are handed to the writer), so that what the request used is accounted
  // for before the client can see the end of the answer.
  std::function<void(const ProxyOutcome&)> before_completion;
};

class Proxy {
 public:
  // REQUIRES: every reference outlives the proxy; workers >= 1.
  Proxy(const GatewayOptions& options, ReplicaSource& source, fleet::RoutingPolicy& policy,
        GatewayMetrics& metrics, DecisionLog& decisions, const Clock& clock, std::size_t workers);
  ~Proxy();

  // Serves `call` completely (the writer is completed or found closed). REQUIRES: worker <
  // workers, and no other run() with the same worker at the same time.
  ProxyOutcome run(ProxyCall& call, std::size_t worker);

  // Requests this gateway has outstanding on a replica.
  [[nodiscard]] std::int64_t outstanding(std::string_view replica) const;
  // The source's replicas with the load overlay applied (what the policy sees).
  [[nodiscard]] std::vector<fleet::ReplicaView> replicas_with_overlay() const;

 private:
  struct Worker;
  struct Attempt;

  Attempt attempt_once(ProxyCall& call, Worker& worker, const fleet::ReplicaView& replica,
                       ProxyOutcome& outcome);
  void track(const std::string& replica, int delta);

  const GatewayOptions& options_;
  ReplicaSource& source_;
  fleet::RoutingPolicy& policy_;
  GatewayMetrics& metrics_;
  DecisionLog& decisions_;
  const Clock& clock_;
  std::vector<std::unique_ptr<Worker>> workers_;
  mutable std::mutex mutex_;
  std::map<std::string, std::int64_t, std::less<>> outstanding_;  // Guarded by mutex_.
};

}  // namespace spillway::gateway
