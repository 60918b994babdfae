#include "gateway/proxy.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include <boost/asio/io_context.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "core/log.h"
#include "core/random.h"

#include "net/sse.h"
#include "openai/api_error.h"
#include "openai/chat_response.h"
#include "openai/usage_header.h"

#include "gateway/openai_rewrite.h"
#include "gateway/sse_splitter.h"
#include "gateway/upstream_address.h"

namespace spillway::gateway {
namespace {

std::int64_t unix_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// 429/5xx: busy or failing. 499: the replica cancelled the work itself (e.g. while shutting
// down); the gateway's own client is still there, or the attempt would not be judged.
bool retryable_status(int status) {
  return status == 429 || status == 499 || status >= 500;
}

std::string_view failure_kind(ErrorCode code) {
  switch (code) {
    case ErrorCode::kUnavailable:
      return "connect";
    case ErrorCode::kDeadlineExceeded:
      return "timeout";
    default:
      return "broken";
  }
}

void respond_error(net::ResponseWriter& writer, const Error& error, std::int32_t retry_after_s) {
  const openai::ApiError e = openai::to_api_error(error);
  net::HttpResponse r = net::HttpResponse::json(e.http_status, openai::render_error_body(e));
  if (e.http_status == 429 || e.http_status == 503) {
    r.headers.set("Retry-After", std::to_string(retry_after_s));
  }
  writer.respond(std::move(r));
}

// Ends a stream that broke after output began: an error event, then [DONE].
void end_broken_stream(net::ResponseWriter& writer, const Error& error) {
  writer.write(net::format_sse_data(openai::render_error_body(openai::to_api_error(error))));
  writer.write(net::format_sse_data(openai::kStreamDone));
  writer.finish();
}

// A replica's address, from its URL. The same URLs come back request after request: parsed
// once per thread. Valid until the thread's next call.
const Result<UpstreamAddress>& address_of(const std::string& url) {
  thread_local std::string parsed_url;
  thread_local std::optional<Result<UpstreamAddress>> parsed;
  if (!parsed || parsed_url != url) {
    parsed.emplace(parse_upstream_url(url));
    parsed_url = url;
  }
  return *parsed;
}

}  // namespace

namespace asio = boost::asio;

std::string_view proxy_endpoint_path(ProxyEndpoint endpoint) {
  switch (endpoint) {
    case ProxyEndpoint::kChat:
      return "/v1/chat/completions";
    case ProxyEndpoint::kCompletions:
      return "/v1/completions";
  }
  return "/v1/chat/completions";
}

net::UpstreamClientOptions upstream_options(const GatewayOptions& o) {
  net::UpstreamClientOptions u;
  u.connect_timeout = o.connect_timeout;
  u.io_timeout = o.io_timeout;
  u.request_timeout = o.request_timeout;
  // What the relay reads of an answer's head (attempt_once's on_head); the other fields are
  // the replica's own business and are not stored.
  u.response_fields = {"Content-Type", "Retry-After", std::string(openai::kUsageHeader)};
  return u;
}

// What one attempt on one replica came to.
struct Proxy::Attempt {
  Status transport;  // The HttpClient call's failure, if any.
  int status = 0;
  // The answer's headers the client gets relayed (the rest are the replica's own business).
  std::optional<std::string> content_type;
  std::optional<std::string> retry_after;
  std::optional<openai::Usage> header_usage;  // openai/usage_header.h, when it parsed.
  std::string body;                           // Non-streaming answers and error answers.
  bool saw_done = false;
  bool client_gone = false;
  bool truncated = false;  // Stream ended inside an event or without [DONE].
};

Proxy::Proxy(const GatewayOptions& options, ReplicaSource& source, fleet::RoutingPolicy& policy,
             GatewayMetrics& metrics, DecisionLog& decisions, const Clock& clock)
    : options_(options),
      source_(source),
      policy_(policy),
      metrics_(metrics),
      decisions_(decisions),
      clock_(clock),
      client_(upstream_options(options)) {
  starts_status_ = [&]() -> Status {
    net::UpstreamRequest::Fields common;
    SPW_TRY(common.add("Content-Type", "application/json"));
    if (!options.internal_api_key.empty()) {
      SPW_TRY(common.add("Authorization", "Bearer " + options.internal_api_key));
    }
    for (const ProxyEndpoint e : {ProxyEndpoint::kChat, ProxyEndpoint::kCompletions}) {
      SPW_ASSIGN_OR_RETURN(net::UpstreamRequest start,
                           net::UpstreamRequest::make("POST", proxy_endpoint_path(e)));
      start.add(common);
      starts_.push_back(std::move(start));  // Indexed by ProxyEndpoint.
    }
    return Status::ok_status();
  }();
  if (!starts_status_.ok()) starts_.clear();
}

Proxy::~Proxy() = default;

std::int64_t Proxy::outstanding(std::string_view replica) const {
  std::lock_guard lock(mutex_);
  const auto it = outstanding_.find(replica);
  return it == outstanding_.end() ? 0 : it->second;
}

void Proxy::track(const std::string& replica, int delta) {
  // Entries stay at zero (no node to make and free per request) until there are many of them:
  // replicas come and go, each with a new id.
  constexpr std::size_t kMaxIdle = 1024;
  std::lock_guard lock(mutex_);
  auto it = outstanding_.find(replica);
  if (it == outstanding_.end()) {
    if (outstanding_.size() >= kMaxIdle)
      std::erase_if(outstanding_, [](const auto& e) { return e.second <= 0; });
    it = outstanding_.emplace(replica, 0).first;
  }
  it->second += delta;
  total_outstanding_ += delta;
}

ReplicaSnapshot Proxy::replicas_with_overlay() const {
  ReplicaSnapshot replicas = source_.replicas();
  std::shared_ptr<std::vector<fleet::ReplicaView>> overlaid;  // Made at the first change only.
  std::lock_guard lock(mutex_);
  if (total_outstanding_ <= 0) return replicas;
  for (std::size_t i = 0; i < replicas->size(); ++i) {
    const fleet::ReplicaView& r = (*replicas)[i];
    const auto it = outstanding_.find(r.id);
    if (it == outstanding_.end() || it->second - r.running <= r.waiting) continue;
    if (!overlaid) overlaid = std::make_shared<std::vector<fleet::ReplicaView>>(*replicas);
    (*overlaid)[i].waiting = it->second - r.running;
  }
  if (overlaid) return overlaid;
  return replicas;
}

void Proxy::record_decision(const ProxyCall& call, const fleet::ReplicaView& view,
                            std::int32_t attempt, const std::string& reason) {
  const std::int64_t now_ms = unix_now_ms();
  decisions_.add_with([&](RoutingDecision& d) {
    d.unix_ms = now_ms;
    d.request_id.assign(call.request_id);
    d.tenant.assign(call.route.tenant);
    d.model.assign(call.route.model);
    d.priority.assign(fleet::priority_name(call.route.priority));
    d.policy.assign(policy_.name());
    d.replica.assign(view.id);
    d.provider.assign(view.provider);
    d.pool.assign(view.pool);
    d.capacity.assign(fleet::capacity_kind_name(view.capacity));
    d.attempt = attempt;
    d.reason.assign(reason);
    d.waiting = view.waiting;
    d.running = view.running;
    d.kv_usage = view.kv_usage;
  });
}

Result<net::UpstreamRequest> Proxy::upstream_request(ProxyCall& call) const {
  if (!starts_status_.ok()) return starts_status_.error();
  // Room for what is added below, the framing and the body: one allocation in all.
  constexpr std::size_t kRoom = 160;
  net::UpstreamRequest request = starts_[static_cast<std::size_t>(call.endpoint)].copy_with_room(
      kRoom + call.tenant_fields->size() + call.request_id.size() + call.body.size());
  request.add(*call.tenant_fields);
  SPW_TRY(request.add("X-Request-Id", call.request_id));
  if (call.stream) SPW_TRY(request.add("Accept", "text/event-stream"));
  request.finish(call.body);
  call.body = std::string();  // Sent as is by every attempt; the call keeps none.
  return request;
}

Result<const fleet::ReplicaView*> Proxy::route(ProxyCall& call, const ReplicaSnapshot& replicas,
                                               const std::vector<std::string>& tried,
                                               Random& random) {
  call.route.exclude = tried;
  auto chosen = policy_.choose(call.route, *replicas, random);
  if (!chosen.ok()) return chosen.error();
  const auto view = std::find_if(replicas->begin(), replicas->end(),
                                 [&](const fleet::ReplicaView& r) { return r.id == *chosen; });
  if (view == replicas->end()) {
    return make_error(ErrorCode::kInternal, "routing chose an unknown replica");
  }
  return &*view;
}

Proxy::Start Proxy::start(ProxyCall& call, const asio::any_io_executor& executor) {
  Start s{.request = upstream_request(call),
          .random = SeededRandom(options_.seed + calls_.fetch_add(1, std::memory_order_relaxed)),
          .replicas = nullptr,
          .view = std::nullopt,
          .sent = {},
          .sent_at = {}};
  if (!s.request.ok() || call.writer.is_closed()) return s;
  // Off the connection's loop (a queued call started by a slot freed elsewhere) the request
  // is routed and sent by run(), on the loop: send_now must run there.
  const auto* loop = executor.target<asio::io_context::executor_type>();
  if (loop == nullptr || !loop->running_in_this_thread()) return s;
  s.replicas = replicas_with_overlay();
  s.view.emplace(route(call, s.replicas, {}, s.random));
  if (!s.view->ok()) return s;
  const Result<UpstreamAddress>& address = address_of((**s.view)->url);
  if (!address.ok()) return s;  // attempt_once reports it.
  s.sent_at = clock_.now();
  s.sent = client_.send_now(address->host, address->port, *s.request, executor);
  return s;
}

asio::awaitable<ProxyOutcome> Proxy::run(std::shared_ptr<ProxyCall> call_ptr, Start first) {
  ProxyCall& call = *call_ptr;
  // The client leaving cancels the upstream call at once, whatever it is waiting for.
  const auto cancel = std::make_shared<net::UpstreamCancel>(co_await asio::this_coro::executor);
  call.writer.on_close([weak = std::weak_ptr<net::UpstreamCancel>(cancel)] {
    if (auto c = weak.lock()) c->cancel();
  });
  ProxyOutcome out;
  bool completed = false;
  // Fixes the outcome and lets the caller account for it, before the client sees the end.
  const auto conclude = [&](int status) {
    out.status = status;
    if (!completed && call.before_completion) call.before_completion(out);
    completed = true;
  };
  const Result<net::UpstreamRequest>& request = first.request;
  if (!request.ok()) {
    conclude(500);
    respond_error(call.writer,
                  make_error(ErrorCode::kInternal, "cannot forward the request: {}",
                             request.error().message()),
                  options_.retry_after_s);
    co_return out;
  }
  std::vector<std::string> tried;
  std::string reason = "first choice";
  std::optional<Attempt> last_answer;  // The last retryable answer (429/5xx) of a replica.
  std::optional<Error> last_error;
  for (std::int32_t attempt = 1; attempt <= options_.max_attempts; ++attempt) {
    if (call.writer.is_closed()) {
      conclude(499);
      co_return out;
    }
    // The first attempt was routed (and maybe sent) by start(). `replicas` is held through the
    // attempt: `view` points into it.
    const bool routed = attempt == 1 && first.view.has_value();
    ReplicaSnapshot replicas;
    std::optional<Result<const fleet::ReplicaView*>> chosen;
    if (routed) {
      replicas = std::move(first.replicas);
      chosen = std::move(first.view);
    } else {
      replicas = replicas_with_overlay();
      chosen.emplace(route(call, replicas, tried, first.random));
    }
    if (!chosen->ok()) {
      if (!last_error && !last_answer) last_error = chosen->error();
      break;
    }
    const fleet::ReplicaView* const view = **chosen;
    record_decision(call, *view, attempt, reason);
    tried.push_back(view->id);
    if (attempt > 1) metrics_.retries.inc();
    out.replica = view->id;

    track(view->id, +1);
    // (Not a conditional expression of two co_awaits: GCC 12 miscompiles those.)
    net::UpstreamClient::Sent presend;
    std::optional<TimePoint> presend_at;
    if (attempt == 1) {
      presend = std::move(first.sent);
      presend_at = first.sent_at;
    }
    Attempt a =
        co_await attempt_once(call, *request, *view, out, cancel, std::move(presend), presend_at);
    track(view->id, -1);

    if (a.client_gone) {
      conclude(499);
      co_return out;
    }
    if (!a.transport.ok() && a.transport.code() == ErrorCode::kPayloadTooLarge &&
        !out.output_started) {
      // The replica works; its answer is beyond this gateway's limits. Not worth a retry.
      conclude(500);
      respond_error(call.writer,
                    make_error(ErrorCode::kInternal, "{}", a.transport.error().message()),
                    options_.retry_after_s);
      co_return out;
    }
    if (!a.transport.ok() || a.truncated || (call.stream && a.status == 200 && !a.saw_done)) {
      const Error error = !a.transport.ok()
                              ? a.transport.error()
                              : make_error(ErrorCode::kDataLoss, "the stream ended early");
      metrics_.upstream_failure(failure_kind(error.code()));
      source_.report_failure(view->id);
      log_warn("upstream attempt failed",
               {kv("request_id", call.request_id), kv("replica", view->id),
                kv("error", error.to_string()), kv("output_started", out.output_started)});
      if (out.output_started) {
        conclude(200);
        end_broken_stream(
            call.writer, make_error(ErrorCode::kUnavailable,
                                    "the replica serving this stream failed: {}", error.message()));
        co_return out;
      }
      reason = fmt::format("{} failed: {}", view->id, error.message());
      last_error = error;
      last_answer.reset();
      continue;
    }
    if (retryable_status(a.status) && !out.output_started) {
      metrics_.upstream_failure("status");
      reason = fmt::format("{} answered {}", view->id, a.status);
      last_answer = std::move(a);
      last_error.reset();
      continue;
    }
    source_.report_success(view->id);
    if (attempt > 1) metrics_.failovers.inc();
    if (call.stream && a.status == 200) {
      conclude(200);
      call.writer.finish();
      co_return out;
    }
    // A complete answer (non-streaming success, or an error the client must see).
    if (a.status == 200) out.usage = a.header_usage ? a.header_usage : read_usage(a.body);
    net::HttpResponse response;
    response.status = a.status;
    response.headers.set("Content-Type", a.content_type ? std::move(*a.content_type)
                                                        : std::string("application/json"));
    if (a.retry_after) response.headers.set("Retry-After", std::move(*a.retry_after));
    response.body = std::move(a.body);
    conclude(a.status);
    if (!call.writer.respond(std::move(response))) out.status = 499;
    co_return out;
  }
  if (call.writer.is_closed()) {
    conclude(499);
    co_return out;
  }
  if (last_answer) {
    net::HttpResponse response;
    response.status = last_answer->status;
    response.headers.set("Content-Type", last_answer->content_type
                                             ? std::move(*last_answer->content_type)
                                             : std::string("application/json"));
    response.headers.set("Retry-After", last_answer->retry_after
                                            ? std::move(*last_answer->retry_after)
                                            : std::to_string(options_.retry_after_s));
    response.body = std::move(last_answer->body);
    conclude(last_answer->status);
    if (!call.writer.respond(std::move(response))) out.status = 499;
    co_return out;
  }
  const Error error =
      tried.empty()
          ? make_error(ErrorCode::kUnavailable, "{}",
                       last_error ? last_error->message() : "no ready replica")
          : make_error(ErrorCode::kUnavailable, "no replica could serve the request ({} tried): {}",
                       tried.size(), last_error ? last_error->message() : "unknown error");
  conclude(503);
  respond_error(call.writer, error, options_.retry_after_s);
  co_return out;
}

// Waits while the client reads slower than the replica writes (bounded by io_timeout).
asio::awaitable<bool> Proxy::wait_for_client(ProxyCall& call) {
  if (call.writer.buffered_bytes() <= options_.max_client_buffer_bytes) {
    co_return !call.writer.is_closed();
  }
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const TimePoint start = clock_.now();
  while (call.writer.buffered_bytes() > options_.max_client_buffer_bytes) {
    if (call.writer.is_closed() || clock_.now() - start > options_.io_timeout) co_return false;
    timer.expires_after(std::chrono::milliseconds(1));
    boost::system::error_code ignored;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
  }
  co_return !call.writer.is_closed();
}

asio::awaitable<Proxy::Attempt> Proxy::attempt_once(
    ProxyCall& call, const net::UpstreamRequest& request, const fleet::ReplicaView& replica,
    ProxyOutcome& out, const std::shared_ptr<net::UpstreamCancel>& cancel,
    net::UpstreamClient::Sent presend, std::optional<TimePoint> presend_at) {
  Attempt a;
  const Result<UpstreamAddress> address = address_of(replica.url);  // A copy: this suspends.
  if (!address.ok()) {
    a.transport = address.error();
    co_return a;
  }
  std::string scratch;
  const TimePoint sent = presend && presend_at ? *presend_at : clock_.now();
  bool body_too_large = false;
  // The callbacks go to the client through std::ref: a std::function holds a reference in
  // place, where these lambdas (capturing several locals) would be copied to the heap.
  const auto head = [&](int status, const net::HttpHeaders& headers) {
    metrics_.upstream_latency.observe(to_seconds(clock_.now() - sent));
    a.status = status;
    if (const auto v = headers.get("Content-Type")) a.content_type.emplace(*v);
    if (const auto v = headers.get("Retry-After")) a.retry_after.emplace(*v);
    if (const auto v = headers.get(openai::kUsageHeader))
      a.header_usage = openai::parse_usage_header(*v);
    if (call.writer.is_closed()) {
      a.client_gone = true;
      return false;
    }
    return true;
  };
  const auto on_event = [&](std::string_view data) {
    if (data == openai::kStreamDone) a.saw_done = true;
    std::string_view payload = data;
    if (!a.saw_done) {
      const ChunkUsage info = inspect_chunk(data);
      if (info.usage) out.usage = info.usage;
      if (info.usage_only && !call.client_wants_usage) return true;
      if (!call.client_wants_usage) payload = without_null_usage(data, scratch);
    }
    if (!out.output_started) {
      if (!call.writer.start(200, net::sse_response_headers())) {
        a.client_gone = true;
        return false;
      }
      out.output_started = true;
    }
    if (!call.writer.write(net::format_sse_data(payload))) {
      a.client_gone = true;
      return false;
    }
    if (!a.saw_done) ++out.events;
    return true;
  };
  SseSplitter splitter(options_.max_event_bytes);
  Status relay_error;
  using Body = net::UpstreamClient::Body;
  const auto body = [&](std::string_view piece) -> Body {
    if (call.writer.is_closed()) {
      a.client_gone = true;
      return Body::kStop;
    }
    if (!call.stream || a.status != 200) {
      if (a.body.size() + piece.size() > options_.max_response_bytes) {
        body_too_large = true;
        return Body::kStop;
      }
      a.body.append(piece);
      return Body::kContinue;
    }
    if (a.saw_done) return Body::kContinue;  // Nothing follows [DONE].
    Status s = splitter.feed(piece, on_event);
    if (!s.ok()) {
      if (!a.client_gone) relay_error = std::move(s);
      return Body::kStop;
    }
    // Over the client buffer bound: the call waits (wait) before it reads on.
    return call.writer.buffered_bytes() > options_.max_client_buffer_bytes ? Body::kWait
                                                                           : Body::kContinue;
  };
  const auto wait = [&]() -> asio::awaitable<bool> {
    if (!co_await wait_for_client(call)) {
      a.client_gone = true;
      co_return false;
    }
    co_return true;
  };

  const net::UpstreamClient::HeadCallback on_head = std::ref(head);
  const net::UpstreamClient::BodyCallback on_body = std::ref(body);
  const net::UpstreamClient::WaitCallback on_wait = std::ref(wait);
  auto result = co_await client_.stream(address->host, address->port, request, on_head, on_body,
                                        on_wait, cancel, std::move(presend));
  if (cancel->cancelled()) a.client_gone = true;
  if (a.client_gone) co_return a;
  if (body_too_large) {
    a.transport = make_error(ErrorCode::kPayloadTooLarge, "the replica's answer exceeds {} bytes",
                             options_.max_response_bytes);
    co_return a;
  }
  if (!relay_error.ok()) {
    a.transport = relay_error;
    co_return a;
  }
  if (!result.ok()) {
    a.transport = result.status();
    co_return a;
  }
  if (call.stream && a.status == 200 && (splitter.partial() || !a.saw_done)) a.truncated = true;
  co_return a;
}

}  // namespace spillway::gateway
