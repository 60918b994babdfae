// Operator authentication (net/admin_auth.h, control/admin_auth.h) and the fleet API's drain
// routes behind it, over real HTTP; and the internal key reaching a launched replica through
// its environment, never its command line.
#include "control/admin_auth.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

#include <boost/json.hpp>

#include "core/clock.h"
#include "core/random.h"

#include "net/http_client.h"
#include "net/http_server.h"

#include "control/control_plane.h"
#include "control/control_test_support.h"
#include "control/fleet_api.h"
#include "control/replica_launcher.h"
#include "fleet/fleet_spec.h"

namespace spillway::control {
namespace {

namespace json = boost::json;

constexpr std::string_view kAdminKey = "sk-spw-AdminKeyForTests000000000000001";

net::HttpRequest request_from(std::string remote, std::optional<std::string> bearer = {}) {
  net::HttpRequest r;
  r.method = "POST";
  r.remote_address = std::move(remote);
  if (bearer) r.headers.set("Authorization", "Bearer " + *bearer);
  return r;
}

TEST(AdminAuth, LoopbackAddresses) {
  for (const char* local :
       {"127.0.0.1:5000", "127.8.9.10:1", "::1:5000", "[::1]:5000", "::ffff:127.0.0.1:5000"}) {
    EXPECT_TRUE(net::is_loopback_address(local)) << local;
  }
  for (const char* remote : {"10.0.0.7:5000", "192.168.1.2:80", "::ffff:10.0.0.1:5000",
                             "fe80::1:5000", "unknown", "", "127.0.0.1", ":5000"}) {
    EXPECT_FALSE(net::is_loopback_address(remote)) << remote;
  }
}

TEST(AdminAuth, WithoutAKeyOnlyLoopbackClientsPass) {
  const net::AdminAuth none;
  EXPECT_FALSE(none.has_key());
  for (auto access : {net::AdminAccess::kRead, net::AdminAccess::kWrite}) {
    EXPECT_TRUE(net::check_admin(request_from("127.0.0.1:4000"), none, access).ok());
    const Status remote = net::check_admin(request_from("10.0.0.7:4000"), none, access);
    EXPECT_EQ(remote.code(), ErrorCode::kPermissionDenied);
    // A key presented where none is configured opens nothing.
    EXPECT_EQ(net::check_admin(request_from("10.0.0.7:4000", std::string(kAdminKey)), none, access)
                  .code(),
              ErrorCode::kPermissionDenied);
  }
}

TEST(AdminAuth, WithAKeyWritesNeedItEverywhereAndReadsNeedItRemotely) {
  SeededRandom random(3);
  const net::AdminAuth auth = make_admin_auth(kAdminKey, random);
  ASSERT_TRUE(auth.has_key());
  const std::string key(kAdminKey);
  for (const char* peer : {"127.0.0.1:4000", "10.0.0.7:4000"}) {
    const Status missing = net::check_admin(request_from(peer), auth, net::AdminAccess::kWrite);
    EXPECT_EQ(missing.code(), ErrorCode::kUnauthenticated) << peer;
    const Status wrong =
        net::check_admin(request_from(peer, key + "x"), auth, net::AdminAccess::kWrite);
    EXPECT_EQ(wrong.code(), ErrorCode::kUnauthenticated) << peer;
    EXPECT_EQ(wrong.error().message().find(key), std::string::npos);  // Never echoed.
    EXPECT_TRUE(net::check_admin(request_from(peer, key), auth, net::AdminAccess::kWrite).ok());
    EXPECT_TRUE(net::check_admin(request_from(peer, key), auth, net::AdminAccess::kRead).ok());
  }
  EXPECT_TRUE(net::check_admin(request_from("127.0.0.1:4000"), auth, net::AdminAccess::kRead).ok());
  EXPECT_EQ(net::check_admin(request_from("10.0.0.7:4000"), auth, net::AdminAccess::kRead).code(),
            ErrorCode::kUnauthenticated);
  // Scheme is case-insensitive; a bare key without it is not accepted.
  net::HttpRequest lower = request_from("10.0.0.7:4000");
  lower.headers.set("Authorization", "bearer " + key);
  EXPECT_TRUE(net::check_admin(lower, auth, net::AdminAccess::kWrite).ok());
  net::HttpRequest bare = request_from("10.0.0.7:4000");
  bare.headers.set("Authorization", key);
  EXPECT_FALSE(net::check_admin(bare, auth, net::AdminAccess::kWrite).ok());
  // An empty key configures no key at all.
  EXPECT_FALSE(make_admin_auth("", random).has_key());
}

fleet::FleetSpec one_pool_fleet() {
  auto spec = fleet::parse_fleet_spec(R"(
[[providers]]
name = "azure"
  [[providers.regions]]
  name = "local"
    [[providers.regions.pools]]
    name = "azure-local"
    gpu = "cpu-local"
    gpus = 2
    gpus_per_node = 1
    cost_per_gpu_hour = 1.0
    capacity = "reserved"
    workloads = ["inference"]
      [providers.regions.pools.local]
[[models]]
name = "stories"
path = "stories260K.gguf"
min_replicas = 1
)",
                                      "fleet.toml");
  EXPECT_TRUE(spec.ok()) << spec.error().message();
  return std::move(spec).value();
}

struct Reply {
  int status = 0;
  std::string body;
  std::string www_authenticate;
};

Reply post(const std::string& host, int port, const std::string& target,
           std::optional<std::string> bearer = {}) {
  net::HttpClientOptions o;
  o.host = host;
  o.port = port;
  net::HttpClient client(o);
  net::HttpClientRequest r;
  r.method = "POST";
  r.target = target;
  if (bearer) r.headers.set("Authorization", "Bearer " + *bearer);
  auto resp = client.request(r);
  EXPECT_TRUE(resp.ok()) << resp.error().message();
  if (!resp.ok()) return {};
  return {resp->status, resp->body,
          std::string(resp->headers.get("WWW-Authenticate").value_or(""))};
}

bool drained(const ControlPlane& cp) {
  return cp.fleet_status().pools.at(0).drained;
}

// The control plane is not started: drain and undrain only change desired state.
TEST(FleetApiAdmin, DrainNeedsTheAdminKeyWhenOneIsConfigured) {
  SeededRandom random(5);
  ControlPlane cp(one_pool_fleet(), ControlOptions{}, SteadyClock::instance());
  net::Router router;
  ASSERT_TRUE(add_fleet_routes(router, cp, make_admin_auth(kAdminKey, random)).ok());
  net::HttpServer server(net::HttpServerOptions{}, std::move(router));
  ASSERT_TRUE(server.start().ok());
  const int port = server.port();
  const std::string drain = "/v1/fleet/pools/azure-local/drain";

  Reply r = post("127.0.0.1", port, drain);
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.www_authenticate, "Bearer");
  const json::object error = json::parse(r.body).as_object().at("error").as_object();
  EXPECT_EQ(error.at("type").as_string(), "authentication_error");
  EXPECT_TRUE(error.contains("param") && error.contains("code"));
  EXPECT_FALSE(drained(cp));
  EXPECT_EQ(post("127.0.0.1", port, drain, "sk-spw-wrong").status, 401);
  EXPECT_FALSE(drained(cp));

  r = post("127.0.0.1", port, drain, std::string(kAdminKey));
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_TRUE(drained(cp));
  EXPECT_EQ(post("127.0.0.1", port, "/v1/fleet/pools/azure-local/undrain").status, 401);
  EXPECT_TRUE(drained(cp));
  EXPECT_EQ(
      post("127.0.0.1", port, "/v1/fleet/pools/azure-local/undrain", std::string(kAdminKey)).status,
      200);
  EXPECT_FALSE(drained(cp));
  server.stop();
}

// A non-loopback IPv4 address of this machine, if it has one.
std::optional<std::string> external_ipv4() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return std::nullopt;
  std::optional<std::string> found;
  for (ifaddrs* a = list; a != nullptr && !found; a = a->ifa_next) {
    if (a->ifa_addr == nullptr || a->ifa_addr->sa_family != AF_INET) continue;
    const auto* in = reinterpret_cast<const sockaddr_in*>(a->ifa_addr);
    char text[INET_ADDRSTRLEN] = {};
    if (::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text) == nullptr) continue;
    if (!net::is_loopback_address(std::string(text) + ":1")) found = text;
  }
  ::freeifaddrs(list);
  return found;
}

TEST(FleetApiAdmin, WithoutAKeyDrainIsLocalOnly) {
  ControlPlane cp(one_pool_fleet(), ControlOptions{}, SteadyClock::instance());
  net::Router router;
  ASSERT_TRUE(add_fleet_routes(router, cp).ok());
  net::HttpServerOptions o;
  o.host = "0.0.0.0";
  net::HttpServer server(o, std::move(router));
  ASSERT_TRUE(server.start().ok());
  const std::string drain = "/v1/fleet/pools/azure-local/drain";

  const auto external = external_ipv4();
  if (external) {
    // The same machine through a non-loopback interface: the peer is not local.
    const Reply r = post(*external, server.port(), drain);
    EXPECT_EQ(r.status, 403) << r.body;
    EXPECT_EQ(json::parse(r.body).at("error").at("type").as_string(), "permission_error");
    EXPECT_FALSE(drained(cp));
  }
  EXPECT_EQ(post("127.0.0.1", server.port(), drain).status, 200);
  EXPECT_TRUE(drained(cp));
  server.stop();
  if (!external) GTEST_SKIP() << "no non-loopback IPv4 interface to test the 403 from";
}

TEST(ReplicaEnvironment, CarriesTheKeyAndScrubsInheritedSecrets) {
  ReplicaCommand c;
  c.api_key = "sk-spw-env-key";
  const char* inherited[] = {"PATH=/bin",
                             "SPILLWAY_ADMIN_KEY=admin",
                             "SPILLWAY_API_KEYS=old",
                             "SPILLWAY_INTERNAL_KEY=int",
                             "HOME=/root",
                             nullptr};
  const auto env = replica_environment(c, inherited);
  const std::vector<std::string> want = {"PATH=/bin", "HOME=/root",
                                         "SPILLWAY_API_KEYS=sk-spw-env-key",
                                         "SPILLWAY_TRUSTED_KEYS=sk-spw-env-key"};
  EXPECT_EQ(env, want);
  c.api_key.clear();
  EXPECT_EQ(replica_environment(c, inherited),
            (std::vector<std::string>{"PATH=/bin", "HOME=/root"}));
  for (const auto& a : replica_argv(c))
    EXPECT_EQ(a.find("sk-spw"), std::string::npos);
}

std::string read_proc(pid_t pid, const char* what) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/" + what, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

TEST(ReplicaEnvironment, ALaunchedReplicasCommandLineHoldsNoKey) {
  SPW_REQUIRE_SHARED_FILE(testing::model_path());
  constexpr std::string_view kKey = "sk-spw-CmdlineSecret00000000000000000042";
  ::setenv("SPILLWAY_ADMIN_KEY", "sk-spw-ParentAdminKey", 1);
  ReplicaCommand c;
  c.binary = testing::spillway_bin();
  c.model_path = testing::model_path();
  c.model_name = "stories";
  c.api_key = std::string(kKey);
  c.kv_cache_mib = 4;
  LaunchOptions lo;
  lo.replica_id = "cmdline";
  lo.forward_to_log = false;
  auto p = ReplicaProcess::launch(c, lo);
  ::unsetenv("SPILLWAY_ADMIN_KEY");
  ASSERT_TRUE(p.ok()) << p.error().message();
  ASSERT_TRUE((*p)->wait_for_port(testing::kWaitLimit));

  const std::string cmdline = read_proc((*p)->pid(), "cmdline");
  EXPECT_NE(cmdline.find("serve"), std::string::npos);
  EXPECT_EQ(cmdline.find(kKey), std::string::npos);
  const std::string environment = read_proc((*p)->pid(), "environ");
  EXPECT_NE(environment.find(fmt::format("SPILLWAY_API_KEYS={}", kKey)), std::string::npos);
  EXPECT_EQ(environment.find("ParentAdminKey"), std::string::npos);

  // The key arrived: the replica requires it.
  auto client = testing::client_for(*(*p)->port());
  net::HttpClientRequest gen;
  gen.method = "POST";
  gen.target = "/v1/completions";
  gen.body = R"({"model":"stories","prompt":"Once","max_tokens":2})";
  EXPECT_EQ(client.request(gen)->status, 401);
  gen.headers.set("Authorization", fmt::format("Bearer {}", kKey));
  EXPECT_EQ(client.request(gen)->status, 200);
  EXPECT_EQ((*p)->terminate(std::chrono::seconds(30)).exit_code, 0);
}

}  // namespace
}  // namespace spillway::control
