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
// Usage (ProxyOutcome::usage): a complete answer's X-Spillway-Usage field when it parses
// (openai/usage_header.h: what `spillway serve` sends, so its body is not read), else the body's
// "usage" object; a stream's usage chunk. The field is not relayed to the client.
//
// Cancellation: when the client disconnects, the relay cancels the upstream call, which closes
// the connection to the replica, which cancels the generation. This holds at every stage: while
// events flow, and while the replica is still silent (a non-streaming answer being generated, a
// stream waiting for its first token): the writer's on_close callback cancels the call at once.
//
// Load overlay: the policy sees each replica's reported load with the gateway's own
// outstanding requests folded in (outstanding requests the replica does not report yet count
// as waiting), so a burst between two load reports does not all land on one replica.
//
// Threading: run() is a coroutine on the executor of the call's writer (net/io_executor.h: the
// I/O thread of the client's connection), so the client's bytes, the replica's bytes and the
// relay share one event loop and no thread handoff. Many run() may be in progress at once, on
// several loops; the upstream connections are kept alive per loop (net/upstream_client.h).
#pragma once

#include <atomic>
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

#include <boost/asio/awaitable.hpp>

#include "core/clock.h"

#include "net/response_writer.h"
#include "net/upstream_client.h"
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
  std::string body;  // What the replica receives (Proxy::run takes it).
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
  // REQUIRES: every reference outlives the proxy.
  Proxy(const GatewayOptions& options, ReplicaSource& source, fleet::RoutingPolicy& policy,
        GatewayMetrics& metrics, DecisionLog& decisions, const Clock& clock);
  ~Proxy();

  // Serves `call` completely (the writer is completed or found closed). REQUIRES: awaited on
  // net::io_executor_of(call->writer); the proxy outlives it.
  boost::asio::awaitable<ProxyOutcome> run(std::shared_ptr<ProxyCall> call);

  // Requests this gateway has outstanding on a replica.
  [[nodiscard]] std::int64_t outstanding(std::string_view replica) const;
  // The source's replicas with the load overlay applied (what the policy sees).
  [[nodiscard]] std::vector<fleet::ReplicaView> replicas_with_overlay() const;

 private:
  struct Attempt;

  boost::asio::awaitable<Attempt> attempt_once(ProxyCall& call, const net::UpstreamRequest& request,
                                               const fleet::ReplicaView& replica,
                                               ProxyOutcome& outcome,
                                               const std::shared_ptr<net::UpstreamCancel>& cancel);
  // What every attempt of `call` sends (takes call.body); kInvalidArgument when a field of it
  // is not a valid header value. Not a coroutine, so its temporaries stay off the coroutine
  // frame, as record_decision's.
  [[nodiscard]] Result<net::UpstreamRequest> upstream_request(ProxyCall& call) const;
  void record_decision(const ProxyCall& call, const fleet::ReplicaView& view, std::int32_t attempt,
                       const std::string& reason);
  boost::asio::awaitable<bool> wait_for_client(ProxyCall& call);
  void track(const std::string& replica, int delta);

  const GatewayOptions& options_;
  ReplicaSource& source_;
  fleet::RoutingPolicy& policy_;
  GatewayMetrics& metrics_;
  DecisionLog& decisions_;
  const Clock& clock_;
  // The fields every forwarded request carries (Content-Type, Authorization with the
  // internal key), checked once; common_fields_status_ says why they could not be made.
  net::UpstreamRequest::Fields common_fields_;
  Status common_fields_status_;
  net::UpstreamClient client_;
  std::atomic<std::uint64_t> calls_{0};  // Seeds each call's random generator.
  mutable std::mutex mutex_;
  std::map<std::string, std::int64_t, std::less<>> outstanding_;  // Guarded by mutex_.
};

}  // namespace spillway::gateway
