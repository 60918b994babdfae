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
// start(), called on that thread before run() is spawned, routes the first attempt and sends
// it on an idle connection: the request does not wait for the coroutine's setup.
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
#include "core/random.h"

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

// Where a call goes on the replica.
enum class ProxyEndpoint : std::uint8_t { kChat, kCompletions };
// "/v1/chat/completions", "/v1/completions".
[[nodiscard]] std::string_view proxy_endpoint_path(ProxyEndpoint endpoint);

struct ProxyCall {
  ProxyEndpoint endpoint = ProxyEndpoint::kChat;
  std::string body;  // What the replica receives (Proxy::run takes it).
  bool stream = false;
  bool client_wants_usage = false;  // Stream: the client's stream_options.include_usage.
  fleet::RouteRequest route;        // exclude is filled by the proxy.
  std::string request_id;
  // The tenant's fields for the replica (X-Spillway-Tenant, X-Spillway-Priority and, for a
  // shared cache, X-Spillway-Cache-Namespace), made once per tenant. REQUIRES: not null, and
  // outlives run().
  const net::UpstreamRequest::Fields* tenant_fields = nullptr;
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

  // What start() did for a call: its request made, its first attempt routed and, when the
  // replica has an idle kept-alive connection on this loop, sent.
  struct Start {
    Result<net::UpstreamRequest> request;
    SeededRandom random;       // The call's, for routing.
    ReplicaSnapshot replicas;  // What the first attempt was routed on; null: not routed.
    // Into `replicas`: the first choice, or why there was none; nullopt: not routed.
    std::optional<Result<const fleet::ReplicaView*>> view;
    net::UpstreamClient::Sent sent;
    std::optional<TimePoint> sent_at;
  };

  // The first steps of serving `call`: the request and, when called on the thread running
  // `executor` (net::io_executor_of(call.writer), an io_context's), the first routing decision
  // and, where it can (net::UpstreamClient::send_now), the send, so that the request leaves
  // before the coroutine that awaits its answer is set up. The decision is recorded, and the
  // replica's outstanding count raised, by run() (after the send). Elsewhere run() routes and
  // sends.
  [[nodiscard]] Start start(ProxyCall& call, const boost::asio::any_io_executor& executor);
  // Serves `call` completely (the writer is completed or found closed), from what start() did.
  // REQUIRES: awaited on net::io_executor_of(call->writer); the proxy outlives it.
  boost::asio::awaitable<ProxyOutcome> run(std::shared_ptr<ProxyCall> call, Start first);

  // Requests this gateway has outstanding on a replica.
  [[nodiscard]] std::int64_t outstanding(std::string_view replica) const;
  // The source's replicas with the load overlay applied (what the policy sees): the source's
  // own snapshot when the overlay changes nothing, else a copy.
  [[nodiscard]] ReplicaSnapshot replicas_with_overlay() const;

 private:
  struct Attempt;

  // `presend`: what start() sent of this attempt, at `presend_at`.
  boost::asio::awaitable<Attempt> attempt_once(ProxyCall& call, const net::UpstreamRequest& request,
                                               const fleet::ReplicaView& replica,
                                               ProxyOutcome& outcome,
                                               const std::shared_ptr<net::UpstreamCancel>& cancel,
                                               net::UpstreamClient::Sent presend,
                                               std::optional<TimePoint> presend_at);
  // The policy's choice among `replicas` for `call`, not one of `tried`.
  Result<const fleet::ReplicaView*> route(ProxyCall& call, const ReplicaSnapshot& replicas,
                                          const std::vector<std::string>& tried, Random& random);
  // What every attempt of `call` sends (takes call.body); kInvalidArgument when a field of it
  // is not a valid header value (a request id, or the fixed fields: starts_status_). Not a
  // coroutine, so its temporaries stay off the coroutine frame, as record_decision's.
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
  // Per endpoint, the request line and the fields every forwarded request carries
  // (Content-Type, Authorization with the internal key), checked once; starts_status_ says
  // why they could not be made (starts_ is empty then).
  std::vector<net::UpstreamRequest> starts_;
  Status starts_status_;
  net::UpstreamClient client_;
  std::atomic<std::uint64_t> calls_{0};  // Seeds each call's random generator.
  mutable std::mutex mutex_;
  // Guarded by mutex_: by replica id (entries may stay at 0), and their sum.
  std::map<std::string, std::int64_t, std::less<>> outstanding_;
  std::int64_t total_outstanding_ = 0;
};

}  // namespace spillway::gateway
