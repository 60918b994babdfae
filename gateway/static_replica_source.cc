#include "gateway/static_replica_source.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "core/log.h"

#include "net/http_client.h"

namespace spillway::gateway {

std::optional<double> prometheus_sample(std::string_view text, std::string_view name) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.starts_with(name) || line.size() == name.size()) continue;
    std::string_view rest = line.substr(name.size());
    if (rest[0] == '{') {
      const std::size_t close = rest.find('}');
      if (close == std::string_view::npos) continue;
      rest = rest.substr(close + 1);
    }
    if (rest.empty() || rest[0] != ' ') continue;
    rest.remove_prefix(1);
    rest = rest.substr(0, rest.find(' '));  // Drop an optional timestamp.
    double value = 0;
    const auto [p, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), value);
    if (ec != std::errc() || p != rest.data() + rest.size() || !std::isfinite(value)) continue;
    return value;
  }
  return std::nullopt;
}

Result<std::unique_ptr<StaticReplicaSource>> StaticReplicaSource::create(
    std::vector<StaticUpstream> upstreams, const StaticReplicaSourceOptions& options,
    const Clock& clock) {
  if (upstreams.empty()) {
    return make_error(ErrorCode::kInvalidArgument, "at least one upstream replica is required");
  }
  if (options.poll_interval.count() < 0 || options.probe_timeout.count() <= 0 ||
      options.eject_for.count() < 0 || options.max_metrics_bytes == 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "static replica source: poll_interval and eject_for must be >= 0, "
                      "probe_timeout and max_metrics_bytes > 0");
  }
  std::set<std::string> ids;
  std::vector<Entry> entries;
  for (StaticUpstream& u : upstreams) {
    if (u.id.empty() || !ids.insert(u.id).second) {
      return make_error(ErrorCode::kInvalidArgument, "upstream id '{}' is empty or repeated", u.id);
    }
    if (u.model.empty()) {
      return make_error(ErrorCode::kInvalidArgument, "upstream '{}' names no model", u.id);
    }
    SPW_ASSIGN_OR_RETURN(UpstreamAddress address, parse_upstream_url(u.url));
    Entry e;
    e.address = std::move(address);
    e.view.id = std::move(u.id);
    e.view.model = std::move(u.model);
    e.view.provider = std::move(u.provider);
    e.view.region = std::move(u.region);
    e.view.pool = std::move(u.pool);
    e.view.url = std::move(u.url);
    e.view.state = fleet::ReplicaState::kReady;
    e.view.capacity = u.capacity;
    e.view.cost_per_gpu_hour = u.cost_per_gpu_hour;
    e.view.rtt_ms = u.rtt_ms;
    entries.push_back(std::move(e));
  }
  return std::unique_ptr<StaticReplicaSource>(
      new StaticReplicaSource(std::move(entries), options, clock));
}

StaticReplicaSource::StaticReplicaSource(std::vector<Entry> entries,
                                         const StaticReplicaSourceOptions& options,
                                         const Clock& clock)
    : options_(options), clock_(clock), entries_(std::move(entries)) {
  if (options_.poll_interval.count() > 0) thread_ = std::thread([this] { run(); });
}

StaticReplicaSource::~StaticReplicaSource() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

ReplicaSnapshot StaticReplicaSource::replicas() const {
  const TimePoint now = clock_.now();
  std::lock_guard lock(mutex_);
  if (!snapshot_ || (next_return_ && now >= *next_return_)) make_snapshot(now);
  return snapshot_;
}

void StaticReplicaSource::make_snapshot(TimePoint now) const {
  next_return_.reset();
  auto list = std::make_shared<std::vector<fleet::ReplicaView>>();
  list->reserve(entries_.size());
  for (Entry& e : entries_) {
    if (e.ejected_until && now >= *e.ejected_until) {
      e.view.state = fleet::ReplicaState::kReady;  // Ejected without probing: the time is up.
      e.ejected_until.reset();
    }
    if (e.ejected_until && (!next_return_ || *e.ejected_until < *next_return_)) {
      next_return_ = e.ejected_until;
    }
    list->push_back(e.view);
  }
  snapshot_ = std::move(list);
}

void StaticReplicaSource::report_success(const std::string& /*replica_id*/) {}

void StaticReplicaSource::report_failure(const std::string& replica_id) {
  std::lock_guard lock(mutex_);
  for (Entry& e : entries_) {
    if (e.view.id != replica_id) continue;
    if (e.view.state == fleet::ReplicaState::kReady) {
      log_warn("upstream ejected after a failure", {kv("replica", replica_id)});
    }
    e.view.state = fleet::ReplicaState::kUnhealthy;
    if (options_.poll_interval.count() == 0) e.ejected_until = clock_.now() + options_.eject_for;
    snapshot_.reset();
  }
}

void StaticReplicaSource::probe_all() {
  std::vector<std::pair<std::string, UpstreamAddress>> targets;
  {
    std::lock_guard lock(mutex_);
    for (const Entry& e : entries_)
      targets.emplace_back(e.view.id, e.address);
  }
  for (const auto& [id, address] : targets) {
    net::HttpClientOptions o;
    o.host = address.host;
    o.port = address.port;
    o.connect_timeout = options_.probe_timeout;
    o.io_timeout = options_.probe_timeout;
    o.request_timeout = options_.probe_timeout * 2;
    o.max_body_bytes = options_.max_metrics_bytes;
    net::HttpClient client(o);
    net::HttpClientRequest ready;
    ready.target = "/ready";
    const auto r = client.request(ready);
    fleet::ReplicaState state = fleet::ReplicaState::kUnhealthy;
    if (r.ok())
      state = r->status == 200 ? fleet::ReplicaState::kReady : fleet::ReplicaState::kDraining;
    std::optional<double> waiting, running, kv_usage;
    if (r.ok()) {
      net::HttpClientRequest metrics;
      metrics.target = "/metrics";
      const auto m = client.request(metrics);
      if (m.ok() && m->status == 200) {
        waiting = prometheus_sample(m->body, "spillway:num_requests_waiting");
        running = prometheus_sample(m->body, "spillway:num_requests_running");
        kv_usage = prometheus_sample(m->body, "spillway:kv_cache_usage_perc");
      }
    }
    std::lock_guard lock(mutex_);
    for (Entry& e : entries_) {
      if (e.view.id != id) continue;
      if (e.view.state != state) {
        log_info("upstream state",
                 {kv("replica", id), kv("state", fleet::replica_state_name(state))});
      }
      e.view.state = state;
      e.ejected_until.reset();
      if (waiting) e.view.waiting = static_cast<std::int64_t>(std::max(0.0, *waiting));
      if (running) e.view.running = static_cast<std::int64_t>(std::max(0.0, *running));
      if (kv_usage) e.view.kv_usage = std::clamp(*kv_usage, 0.0, 1.0);
      snapshot_.reset();
    }
  }
}

void StaticReplicaSource::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    probe_all();
    lock.lock();
    wake_.wait_for(lock, options_.poll_interval, [this] { return stopping_; });
  }
}

}  // namespace spillway::gateway
