#include "gateway/remote_replica_source.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include <boost/json/parse.hpp>
#include <boost/json/parse_options.hpp>
#include <boost/json/value.hpp>

#include "core/log.h"

#include "openai/api_error.h"

#include "fleet/capacity.h"

namespace spillway::gateway {
namespace {

namespace json = boost::json;

constexpr std::size_t kMaxIdBytes = 256;

Error entry_error(std::size_t index, std::string_view field, std::string_view problem) {
  return make_error(ErrorCode::kDataLoss, "fleet replicas: data[{}].{}: {}", index, field, problem);
}

Result<std::string> string_field(const json::object& o, std::size_t index, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || !v->is_string()) return entry_error(index, key, "missing or not a string");
  return std::string(v->as_string());
}

// An optional non-negative finite number (absent: 0).
Result<double> number_field(const json::object& o, std::size_t index, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return 0.0;
  double d = 0;
  if (v->is_int64()) {
    d = static_cast<double>(v->as_int64());
  } else if (v->is_uint64()) {
    d = static_cast<double>(v->as_uint64());
  } else if (v->is_double()) {
    d = v->as_double();
  } else {
    return entry_error(index, key, "not a number");
  }
  if (!std::isfinite(d) || d < 0) return entry_error(index, key, "not a finite number >= 0");
  return d;
}

Result<std::int64_t> count_field(const json::object& o, std::size_t index, std::string_view key) {
  SPW_ASSIGN_OR_RETURN(const double d, number_field(o, index, key));
  if (d > 1e15 || d != std::floor(d)) return entry_error(index, key, "not a whole count");
  return static_cast<std::int64_t>(d);
}

Result<fleet::ReplicaView> parse_entry(const json::value& value, std::size_t index) {
  if (!value.is_object()) return entry_error(index, "", "not an object");
  const json::object& o = value.as_object();
  fleet::ReplicaView v;
  SPW_ASSIGN_OR_RETURN(v.id, string_field(o, index, "id"));
  if (v.id.empty() || v.id.size() > kMaxIdBytes) {
    return entry_error(index, "id", "empty or longer than 256 bytes");
  }
  SPW_ASSIGN_OR_RETURN(v.model, string_field(o, index, "model"));
  if (v.model.empty()) return entry_error(index, "model", "empty");
  SPW_ASSIGN_OR_RETURN(v.provider, string_field(o, index, "provider"));
  SPW_ASSIGN_OR_RETURN(v.region, string_field(o, index, "region"));
  SPW_ASSIGN_OR_RETURN(v.pool, string_field(o, index, "pool"));
  SPW_ASSIGN_OR_RETURN(const std::string state, string_field(o, index, "state"));
  const auto parsed_state = fleet::parse_replica_state(state);
  if (!parsed_state) return entry_error(index, "state", "unknown state");
  v.state = *parsed_state;
  SPW_ASSIGN_OR_RETURN(v.url, string_field(o, index, "url"));
  if (!v.url.empty() || v.state == fleet::ReplicaState::kReady) {
    if (const auto address = parse_upstream_url(v.url); !address.ok()) {
      return entry_error(index, "url", address.error().message());
    }
  }
  if (const json::value* c = o.if_contains("capacity"); c != nullptr && !c->is_null()) {
    const auto kind = c->is_string() ? fleet::parse_capacity_kind(c->as_string()) : std::nullopt;
    if (!kind) return entry_error(index, "capacity", "unknown capacity kind");
    v.capacity = *kind;
  }
  SPW_ASSIGN_OR_RETURN(v.running, count_field(o, index, "running"));
  SPW_ASSIGN_OR_RETURN(v.waiting, count_field(o, index, "waiting"));
  SPW_ASSIGN_OR_RETURN(const double kv_usage, number_field(o, index, "kv_usage"));
  v.kv_usage = std::min(kv_usage, 1.0);
  SPW_ASSIGN_OR_RETURN(v.ttft_p50_s, number_field(o, index, "ttft_p50_s"));
  SPW_ASSIGN_OR_RETURN(v.rtt_ms, number_field(o, index, "rtt_ms"));
  SPW_ASSIGN_OR_RETURN(v.cost_per_gpu_hour, number_field(o, index, "cost_per_gpu_hour"));
  return v;
}

net::HttpResponse unavailable(std::string_view message) {
  const openai::ApiError e =
      openai::to_api_error(make_error(ErrorCode::kUnavailable, "{}", message), std::nullopt);
  net::HttpResponse r = net::HttpResponse::json(e.http_status, openai::render_error_body(e));
  r.headers.set("Retry-After", "1");
  return r;
}

}  // namespace

Status RemoteReplicaSourceOptions::validate() const {
  if (poll_interval.count() < 0) {
    return make_error(ErrorCode::kInvalidArgument, "remote source: poll_interval must be >= 0");
  }
  if (request_timeout.count() <= 0) {
    return make_error(ErrorCode::kInvalidArgument, "remote source: request_timeout must be > 0");
  }
  if (max_staleness.count() <= 0) {
    return make_error(ErrorCode::kInvalidArgument, "remote source: max_staleness must be > 0");
  }
  if (hold_down.count() < 0) {
    return make_error(ErrorCode::kInvalidArgument, "remote source: hold_down must be >= 0");
  }
  if (max_response_bytes == 0 || max_replicas == 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "remote source: max_response_bytes and max_replicas must be > 0");
  }
  return Status();
}

Result<std::vector<fleet::ReplicaView>> parse_fleet_replicas(std::string_view body,
                                                             std::size_t max_replicas) {
  json::parse_options limits;
  limits.max_depth = 16;
  std::error_code ec;
  const json::value root = json::parse(body, ec, {}, limits);
  if (ec) return make_error(ErrorCode::kDataLoss, "fleet replicas: invalid JSON: {}", ec.message());
  const json::value* data = root.is_object() ? root.as_object().if_contains("data") : nullptr;
  if (data == nullptr || !data->is_array()) {
    return make_error(ErrorCode::kDataLoss, "fleet replicas: no \"data\" array");
  }
  const json::array& entries = data->as_array();
  if (entries.size() > max_replicas) {
    return make_error(ErrorCode::kDataLoss, "fleet replicas: {} entries, more than the limit {}",
                      entries.size(), max_replicas);
  }
  std::vector<fleet::ReplicaView> out;
  out.reserve(entries.size());
  std::set<std::string, std::less<>> ids;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    SPW_ASSIGN_OR_RETURN(fleet::ReplicaView v, parse_entry(entries[i], i));
    if (!ids.insert(v.id).second) return entry_error(i, "id", "repeated");
    out.push_back(std::move(v));
  }
  return out;
}

Result<std::unique_ptr<RemoteReplicaSource>> RemoteReplicaSource::create(
    RemoteReplicaSourceOptions options, const Clock& clock) {
  SPW_TRY(options.validate());
  SPW_ASSIGN_OR_RETURN(UpstreamAddress control, parse_upstream_url(options.control_url));
  return std::unique_ptr<RemoteReplicaSource>(
      new RemoteReplicaSource(std::move(options), std::move(control), clock));
}

namespace {

net::HttpClientOptions client_options(const RemoteReplicaSourceOptions& o,
                                      const UpstreamAddress& control) {
  net::HttpClientOptions c;
  c.host = control.host;
  c.port = control.port;
  c.connect_timeout = o.request_timeout;
  c.io_timeout = o.request_timeout;
  c.request_timeout = o.request_timeout * 2;
  c.max_body_bytes = o.max_response_bytes;
  return c;
}

}  // namespace

RemoteReplicaSource::RemoteReplicaSource(RemoteReplicaSourceOptions options,
                                         UpstreamAddress control, const Clock& clock)
    : options_(std::move(options)), clock_(clock), client_(client_options(options_, control)) {
  if (options_.poll_interval.count() > 0) thread_ = std::thread([this] { run(); });
}

RemoteReplicaSource::~RemoteReplicaSource() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool RemoteReplicaSource::stale(TimePoint now) const {
  return !last_success_ || now - *last_success_ > options_.max_staleness;
}

ReplicaSnapshot RemoteReplicaSource::replicas() const {
  const TimePoint now = clock_.now();
  std::lock_guard lock(mu_);
  const bool old = stale(now);
  if (snapshot_ && snapshot_stale_ == old) return snapshot_;
  auto out = std::make_shared<std::vector<fleet::ReplicaView>>(replicas_);
  for (fleet::ReplicaView& v : *out) {
    const bool ejected = ejected_until_.contains(v.id);
    if ((old || ejected) && v.state != fleet::ReplicaState::kStopped) {
      v.state = fleet::ReplicaState::kUnhealthy;
    }
  }
  snapshot_ = std::move(out);
  snapshot_stale_ = old;
  return snapshot_;
}

void RemoteReplicaSource::report_success(const std::string& /*replica_id*/) {}

void RemoteReplicaSource::report_failure(const std::string& replica_id) {
  const TimePoint until = clock_.now() + options_.hold_down;
  std::lock_guard lock(mu_);
  const bool known = std::any_of(replicas_.begin(), replicas_.end(),
                                 [&](const fleet::ReplicaView& v) { return v.id == replica_id; });
  if (!known) return;
  if (ejected_until_.insert_or_assign(replica_id, until).second) {
    log_warn("replica ejected after a failure", {kv("replica", replica_id)});
    snapshot_.reset();
  }
}

std::optional<TimePoint> RemoteReplicaSource::last_success() const {
  std::lock_guard lock(mu_);
  return last_success_;
}

Result<std::string> RemoteReplicaSource::fetch(std::string_view target) {
  net::HttpClientRequest request;
  request.target = std::string(target);
  SPW_ASSIGN_OR_RETURN(net::HttpClientResponse response, client_.request(request));
  if (response.status != 200) {
    return make_error(ErrorCode::kUnavailable, "GET {}: status {}", target, response.status);
  }
  return std::move(response.body);
}

Status RemoteReplicaSource::poll_once() {
  std::lock_guard poll_lock(poll_mu_);
  Result<std::vector<fleet::ReplicaView>> list = make_error(ErrorCode::kInternal, "not polled");
  Result<std::string> body = fetch("/v1/fleet/replicas");
  if (body.ok()) {
    list = parse_fleet_replicas(*body, options_.max_replicas);
  } else {
    list = body.error();
  }
  if (!list.ok()) {
    if (failures_++ == 0) {
      log_error("control plane poll failed; keeping the last replica list",
                {kv("control", options_.control_url), kv("error", list.error().message())});
    }
    return list.error();
  }
  if (failures_ > 0) {
    log_info("control plane poll recovered",
             {kv("control", options_.control_url), kv("failed_polls", failures_)});
    failures_ = 0;
  }
  // The fleet overview is a convenience copy: its failure keeps the last copy.
  Result<std::string> fleet_body = fetch("/v1/fleet");
  if (fleet_body.ok()) {
    std::error_code ec;
    (void)json::parse(*fleet_body, ec);
    if (ec) fleet_body = make_error(ErrorCode::kDataLoss, "/v1/fleet: invalid JSON");
  }
  if (!fleet_body.ok()) {
    log_debug("control plane /v1/fleet poll failed", {kv("error", fleet_body.error().message())});
  }

  const TimePoint now = clock_.now();
  std::lock_guard lock(mu_);
  for (auto it = ejected_until_.begin(); it != ejected_until_.end();) {
    const auto v = std::find_if(list->begin(), list->end(),
                                [&](const fleet::ReplicaView& r) { return r.id == it->first; });
    const bool gone = v == list->end();
    const bool back = !gone && now >= it->second && v->state == fleet::ReplicaState::kReady;
    if (back) log_info("replica re-admitted", {kv("replica", it->first)});
    it = gone || back ? ejected_until_.erase(it) : std::next(it);
  }
  replicas_ = std::move(*list);
  snapshot_.reset();
  replicas_body_ = std::move(*body);
  if (fleet_body.ok()) fleet_body_ = std::move(*fleet_body);
  last_success_ = now;
  return Status();
}

void RemoteReplicaSource::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    (void)poll_once();  // Failures are logged and leave the last list.
    lock.lock();
    wake_.wait_for(lock, options_.poll_interval, [this] { return stopping_; });
  }
}

void RemoteReplicaSource::serve_copy(bool fleet, net::ResponseWriter writer) const {
  std::string body;
  {
    std::lock_guard lock(mu_);
    if (stale(clock_.now())) {
      writer.respond(unavailable("the control plane has not answered recently"));
      return;
    }
    body = fleet ? fleet_body_ : replicas_body_;
  }
  if (body.empty()) {
    writer.respond(unavailable("the control plane's fleet overview is not known yet"));
    return;
  }
  writer.respond(net::HttpResponse::json(200, std::move(body)));
}

Status RemoteReplicaSource::add_fleet_routes(net::Router& router) {
  SPW_TRY(router.add("GET", "/v1/fleet", [this](net::HttpRequest, net::ResponseWriter w) {
    serve_copy(true, std::move(w));
  }));
  return router.add("GET", "/v1/fleet/replicas", [this](net::HttpRequest, net::ResponseWriter w) {
    serve_copy(false, std::move(w));
  });
}

}  // namespace spillway::gateway
