// A client that hangs up on a non-streaming request while the replica still generates (so no
// byte has flowed back yet): the cancellation reaches the replica, which stops generating.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <string_view>

#include "fleet_harness.h"
#include "test_support.h"

namespace spillway::reliability {
namespace {

// Sums one metric over the ready replicas; -1 when one cannot be read.
double sum_over_replicas(const Fleet& fleet, std::string_view name) {
  double sum = 0;
  for (const auto& r : fleet.ready_replicas()) {
    const auto v = fleet.replica_metric(r.view.url, name);
    if (!v) return -1;
    sum += *v;
  }
  return sum;
}

TEST(FleetReliability, ClientHangingUpOnANonStreamingRequestCancelsTheGeneration) {
  SPW_REQUIRE_SHARED_FILE(model_path());
  FleetConfig config;
  config.serve_args = {"--max-running", "1"};  // The choices run one after another.
  auto fleet = Fleet::start(config);
  ASSERT_TRUE(fleet);
  const std::string body = fmt::format(
      R"({{"model":"{}","prompt":"Once","n":2,"max_tokens":400,"temperature":1.0,"seed":5}})",
      kModel);
  // The same request to its end first: how many tokens it takes (sampling is seeded).
  const Reply full = fleet->call("POST", "/v1/completions", body);
  ASSERT_EQ(full.status, 200) << full.body;
  constexpr std::string_view kField = "\"completion_tokens\":";
  const auto completion = full.body.find(kField);
  ASSERT_NE(completion, std::string::npos) << full.body;
  const double full_tokens = std::atof(full.body.c_str() + completion + kField.size());
  ASSERT_GT(full_tokens, 0);
  const double before = sum_over_replicas(*fleet, "spillway:generation_tokens_total");
  ASSERT_EQ(before, full_tokens);
  const std::string request = fmt::format(
      "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n"
      "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
      kTenantKey, body.size(), body);

  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(fleet->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  // The replica is generating; the client leaves without reading anything.
  ASSERT_TRUE(
      wait_until([&] { return sum_over_replicas(*fleet, "spillway:num_requests_running") >= 1; }));
  ::close(fd);

  ASSERT_TRUE(wait_until([&] {
    return sum_over_replicas(*fleet, "spillway:num_requests_running") == 0 &&
           sum_over_replicas(*fleet, "spillway:num_requests_waiting") == 0;
  }));
  const double generated = sum_over_replicas(*fleet, "spillway:generation_tokens_total") - before;
  EXPECT_GE(generated, 0);
  EXPECT_LT(generated, full_tokens) << "the generation ran to its end";
  std::cout << "tokens generated before the cancellation took effect: " << generated << " of "
            << full_tokens << "\n";
  // The cancelled request charged nothing to the tenant: only the first one counts.
  EXPECT_TRUE(wait_until([&] { return fleet->gateway().quota("demo")->requests_in_window() == 1; }))
      << fleet->gateway().quota("demo")->requests_in_window();
}

}  // namespace
}  // namespace spillway::reliability
