// A ReplicaSource fed by a control plane in another process (`spillway gateway --control URL`):
// polls GET <control>/v1/fleet/replicas (and GET <control>/v1/fleet, kept as a read-only copy
// for the status page) in the background.
//
// Health, as the gateway sees it:
//   - Each successful poll replaces the list (ids, URLs, states, load) with the control
//     plane's.
//   - A failed poll (connection, timeout, non-200, a body over max_response_bytes, malformed
//     JSON or a malformed entry) keeps the last list and logs the error (once per streak, and
//     the recovery). When no poll has succeeded for max_staleness, every replica is shown
//     unhealthy, so the gateway answers 503 rather than route on old news.
//   - report_failure() marks a replica unhealthy here at once (a local circuit breaker); it
//     stays so for at least hold_down, and then until a poll shows it ready again. A replica
//     that leaves the list forgets its ejection.
//
// The copies of /v1/fleet and /v1/fleet/replicas (add_fleet_routes) are at most one poll old;
// they are read-only: drain and undrain go to the control plane itself.
//
// Thread-safety: safe for concurrent use. One background thread (when poll_interval > 0),
// stopped and joined by the destructor; poll_once() may also be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

#include "net/http_client.h"
#include "net/router.h"

#include "fleet/replica_state.h"
#include "gateway/replica_source.h"
#include "gateway/upstream_address.h"

namespace spillway::gateway {

struct RemoteReplicaSourceOptions {
  // The control plane's base URL, "http://HOST:PORT" (parse_upstream_url's form).
  std::string control_url;
  // Between two polls; 0 = no background polling (call poll_once()).
  std::chrono::milliseconds poll_interval{1000};
  // Connect and I/O timeout of one poll request; the whole request gets twice this.
  std::chrono::milliseconds request_timeout{2000};
  // With no successful poll for this long, every replica is shown unhealthy. > 0.
  std::chrono::milliseconds max_staleness{5000};
  // A reported replica stays ejected at least this long. >= 0.
  std::chrono::milliseconds hold_down{2000};
  // Largest accepted response body, and most replicas in one list.
  std::size_t max_response_bytes = 4u << 20;
  std::size_t max_replicas = 4096;

  // kInvalidArgument naming the field.
  [[nodiscard]] Status validate() const;
};

// The replicas of a GET /v1/fleet/replicas body ({"object":"list","data":[{id, model,
// provider, region, pool, url, state, running, waiting, kv_usage, ttft_p50_s, capacity,
// cost_per_gpu_hour, rtt_ms}, ...]}; load, price and RTT fields are optional). kDataLoss naming
// the entry and field for anything malformed: not JSON, a missing or mistyped field, an empty or
// repeated id, an unknown state or capacity, a negative count, an unparsable URL (a URL may be
// empty only for a replica that is not ready), or more than max_replicas entries.
[[nodiscard]] Result<std::vector<fleet::ReplicaView>> parse_fleet_replicas(
    std::string_view body, std::size_t max_replicas);

class RemoteReplicaSource final : public ReplicaSource {
 public:
  // kInvalidArgument for bad options or URL. Starts polling (when poll_interval > 0) at once;
  // the list is empty until the first poll succeeds. REQUIRES: clock outlives the source.
  [[nodiscard]] static Result<std::unique_ptr<RemoteReplicaSource>> create(
      RemoteReplicaSourceOptions options, const Clock& clock);
  ~RemoteReplicaSource() override;
  RemoteReplicaSource(const RemoteReplicaSource&) = delete;
  RemoteReplicaSource& operator=(const RemoteReplicaSource&) = delete;

  [[nodiscard]] ReplicaSnapshot replicas() const override;
  void report_failure(const std::string& replica_id) override;
  // Nothing to restart: one failure holds a replica out here, and only a poll brings it back.
  void report_success(const std::string& replica_id) override;

  // Polls the control plane once now (also what the background thread does). The error of a
  // failed replica-list poll (the last list is kept); a failed /v1/fleet poll only keeps the
  // last fleet copy.
  Status poll_once();

  // When the last replica-list poll succeeded; nullopt before the first.
  [[nodiscard]] std::optional<TimePoint> last_success() const;

  // Adds GET /v1/fleet and GET /v1/fleet/replicas, answering with the last polled bodies;
  // 503 (OpenAI error shape) before the first successful poll or once stale. Errors: those of
  // Router::add. REQUIRES: the source outlives the router's server.
  [[nodiscard]] Status add_fleet_routes(net::Router& router);

 private:
  RemoteReplicaSource(RemoteReplicaSourceOptions options, UpstreamAddress control,
                      const Clock& clock);
  void run();
  // GET `target`, 200 only, body bounded. REQUIRES: poll_mu_ held.
  Result<std::string> fetch(std::string_view target);
  [[nodiscard]] bool stale(TimePoint now) const;  // REQUIRES: mu_ held.
  void serve_copy(bool fleet, net::ResponseWriter writer) const;

  const RemoteReplicaSourceOptions options_;
  const Clock& clock_;

  std::mutex poll_mu_;        // Serializes polls (one client, one connection).
  net::HttpClient client_;    // Guarded by poll_mu_.
  std::size_t failures_ = 0;  // Consecutive failed polls; guarded by poll_mu_.

  mutable std::mutex mu_;
  std::vector<fleet::ReplicaView> replicas_;        // Guarded by mu_.
  std::map<std::string, TimePoint> ejected_until_;  // Guarded by mu_: id → hold-down end.
  // Guarded by mu_: what replicas() gave while nothing changed (null after a change), and
  // whether it was made stale.
  mutable ReplicaSnapshot snapshot_;
  mutable bool snapshot_stale_ = false;
  std::optional<TimePoint> last_success_;  // Guarded by mu_.
  std::string replicas_body_;              // Guarded by mu_.
  std::string fleet_body_;                 // Guarded by mu_; empty until polled.
  bool stopping_ = false;                  // Guarded by mu_.
  std::condition_variable wake_;
  std::thread thread_;
};

}  // namespace spillway::gateway
