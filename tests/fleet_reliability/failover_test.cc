// Failures under load through the whole stack: a replica killed with SIGKILL while streaming and
// non-streaming requests flow, and a whole pool drained (an outage drill).
#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <set>

#include <boost/json.hpp>

#include "fleet_harness.h"
#include "load_clients.h"
#include "test_support.h"

namespace spillway::reliability {
namespace {

namespace json = boost::json;

// What the gateway has outstanding on each replica (GET /v1/gateway/replicas).
std::map<std::string, std::int64_t> gateway_outstanding(const Fleet& fleet) {
  std::map<std::string, std::int64_t> out;
  const Reply r = fleet.call("GET", "/v1/gateway/replicas", "", "");
  if (r.status != 200) return out;
  const json::value parsed = json::parse(r.body);
  for (const auto& v : parsed.at("data").as_array()) {
    out[std::string(v.at("id").as_string())] = v.at("gateway_outstanding").as_int64();
  }
  return out;
}

void expect_all_acceptable(const std::vector<Outcome>& outcomes) {
  for (const Outcome& o : outcomes) {
    const std::string problem = judge(o);
    EXPECT_EQ(problem, "") << o.request_id << (o.stream ? " (stream)" : "");
  }
}

TEST(FleetReliability, KillNineUnderMixedLoadFailsOverAndReplacesTheReplica) {
  SPW_REQUIRE_SHARED_FILE(model_path());
  auto fleet = Fleet::start(FleetConfig{});
  ASSERT_TRUE(fleet);

  LoadClients load(*fleet, "kill", 6, LoadClients::Mix::kMixed, 96);
  ASSERT_TRUE(wait_until([&] { return load.finished_since(0) >= 12; }));

  // The victim: a ready replica with requests of this gateway on it right now.
  control::ReplicaInfo victim;
  ASSERT_TRUE(wait_until([&] {
    const auto outstanding = gateway_outstanding(*fleet);
    for (const auto& r : fleet->ready_replicas()) {
      const auto it = outstanding.find(r.view.id);
      if (it != outstanding.end() && it->second > 0 && r.pid > 0) {
        victim = r;
        return true;
      }
    }
    return false;
  })) << "no replica with outstanding requests";
  load.set_phase(1);
  ASSERT_EQ(::kill(victim.pid, SIGKILL), 0);

  // Replaced: the same replica slot comes back with a new process and takes traffic again.
  ASSERT_TRUE(wait_until([&] {
    for (const auto& r : fleet->ready_replicas()) {
      if (r.view.id == victim.view.id && r.pid != victim.pid && r.pid > 0) return true;
    }
    return false;
  })) << "replica "
      << victim.view.id << " was not replaced";
  EXPECT_FALSE(process_exists(victim.pid));
  load.set_phase(2);
  ASSERT_TRUE(wait_until([&] { return load.finished_since(2) >= 12; }));
  load.stop();

  const auto outcomes = load.outcomes();
  expect_all_acceptable(outcomes);
  int during_kill = 0, broken_streams = 0, streams = 0;
  for (const Outcome& o : outcomes) {
    during_kill += o.phase_started == 0 && o.phase_ended >= 1 ? 1 : 0;
    streams += o.stream ? 1 : 0;
    if (o.stream && o.events.size() >= 2 &&
        o.events[o.events.size() - 2].find("\"error\"") != std::string::npos) {
      ++broken_streams;
    }
  }
  EXPECT_GE(during_kill, 1);  // The kill hit requests in flight.
  EXPECT_GT(streams, 0);
  EXPECT_LT(streams, static_cast<int>(outcomes.size()));
  std::cout << "requests: " << outcomes.size() << ", in flight at the kill: " << during_kill
            << ", streams: " << streams << ", streams ended by an error event: " << broken_streams
            << "\n";

  std::int64_t restarts = 0;
  for (const auto& r : fleet->control().replica_details()) {
    if (r.view.id == victim.view.id) restarts = r.restarts;
  }
  EXPECT_EQ(restarts, 1);
  // After the replacement both providers serve again, each with one ready replica.
  std::set<std::string> providers;
  for (const auto& r : fleet->ready_replicas())
    providers.insert(r.view.provider);
  EXPECT_EQ(providers, (std::set<std::string>{"azure", "oci"}));
}

TEST(FleetReliability, DrainingAPoolMovesTrafficWithoutFailedRequests) {
  SPW_REQUIRE_SHARED_FILE(model_path());
  auto fleet = Fleet::start(FleetConfig{});
  ASSERT_TRUE(fleet);

  LoadClients load(*fleet, "drain", 4, LoadClients::Mix::kNonStreaming, 32);
  ASSERT_TRUE(wait_until([&] { return load.finished_since(0) >= 8; }));

  // The outage drill through the fleet API on the gateway's port.
  const Reply drained = fleet->call("POST", "/v1/fleet/pools/azure-local/drain", "", "");
  ASSERT_EQ(drained.status, 200) << drained.body;
  EXPECT_TRUE(json::parse(drained.body).at("drained").as_bool());
  load.set_phase(1);  // Requests from here on started after the drain.

  // Both replicas end up in oci; azure holds nothing.
  ASSERT_TRUE(wait_until([&] {
    const auto status = fleet->control().fleet_status();
    return status.pools[0].replicas == 0 && status.models[0].ready == 2;
  }));
  for (const auto& r : fleet->ready_replicas())
    EXPECT_EQ(r.view.pool, "oci-local");
  load.set_phase(2);
  ASSERT_TRUE(wait_until([&] { return load.finished_since(2) >= 8; }));
  load.stop();

  const auto outcomes = load.outcomes();
  expect_all_acceptable(outcomes);
  std::set<std::string> after_drain;
  int in_flight_at_drain = 0;
  for (const Outcome& o : outcomes) {
    if (o.phase_started >= 1) after_drain.insert(o.request_id);
    in_flight_at_drain += o.phase_started == 0 && o.phase_ended >= 1 ? 1 : 0;
  }
  EXPECT_GE(after_drain.size(), 8u);

  // Every request that started after the drain went to oci at once (no attempt on azure).
  std::map<std::string, int> providers_before;
  int checked = 0;
  for (const auto& d : fleet->gateway().decisions().recent()) {
    if (!after_drain.contains(d.request_id)) {
      ++providers_before[d.provider];
      continue;
    }
    ++checked;
    EXPECT_EQ(d.provider, "oci") << d.request_id << " " << d.replica;
    EXPECT_EQ(d.attempt, 1) << d.request_id << " " << d.reason;
  }
  EXPECT_EQ(checked, static_cast<int>(after_drain.size()));
  EXPECT_GT(providers_before["azure"], 0);  // Before the drill the primary served.
  std::cout << "requests: " << outcomes.size() << ", in flight at the drain: " << in_flight_at_drain
            << ", after it: " << after_drain.size() << "\n";
}

TEST(FleetReliability, AHungReplicaDelaysNeitherTheChecksNorTheRestartsOfOthers) {
  SPW_REQUIRE_SHARED_FILE(model_path());
  FleetConfig config;
  // A health check of the hung replica waits this long: far beyond every wait of this test.
  config.health_timeout = std::chrono::milliseconds(600'000);
  auto fleet = Fleet::start(config);
  ASSERT_TRUE(fleet);
  const auto ready = fleet->ready_replicas();
  ASSERT_EQ(ready.size(), 2u);
  const control::ReplicaInfo hung = ready[0];
  const control::ReplicaInfo victim = ready[1];
  ASSERT_EQ(::kill(hung.pid, SIGSTOP), 0);
  struct Resume {
    pid_t pid;
    ~Resume() { ::kill(pid, SIGCONT); }  // Lets its check finish before the fleet stops.
  } resume{hung.pid};
  ASSERT_EQ(::kill(victim.pid, SIGKILL), 0);
  // The crash is seen and the replica relaunched and checked while the hung one's check hangs.
  ASSERT_TRUE(wait_until([&] {
    for (const auto& r : fleet->ready_replicas()) {
      if (r.view.id == victim.view.id && r.pid != victim.pid && r.pid > 0) return true;
    }
    return false;
  })) << "the crashed replica was not replaced while another one hung";
  for (const auto& r : fleet->control().replica_details()) {
    if (r.view.id == hung.view.id) {
      EXPECT_EQ(r.pid, hung.pid);
      EXPECT_EQ(r.restarts, 0);
    }
  }
}

}  // namespace
}  // namespace spillway::reliability
