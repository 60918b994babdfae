// ReplicaProcess against real `spillway serve` processes.
#include "control/replica_launcher.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>
#include <vector>

#include "control/health.h"
#include "control/prometheus_text.h"

#include "control_test_support.h"

namespace spillway::control {
namespace {

using testing::client_for;
using testing::kWaitLimit;
using testing::model_path;
using testing::process_exists;
using testing::spillway_bin;

ReplicaCommand stories_command(const std::string& key = "sk-spw-test-internal") {
  ReplicaCommand c;
  c.binary = spillway_bin();
  c.model_path = model_path();
  c.model_name = "stories";
  c.api_key = key;
  c.kv_cache_mib = 4;
  return c;
}

LaunchOptions quiet(const std::string& id) {
  LaunchOptions o;
  o.replica_id = id;
  o.forward_to_log = false;
  return o;
}

TEST(ReplicaProcess, LearnsThePortAndTheReplicaServes) {
  SPW_REQUIRE_SHARED_FILE(model_path());
  auto p = ReplicaProcess::launch(stories_command(), quiet("t1"));
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  ASSERT_TRUE((*p)->wait_for_port(kWaitLimit));
  const int port = *(*p)->port();
  EXPECT_GT(port, 0);
  EXPECT_TRUE(process_exists((*p)->pid()));

  auto client = client_for(port);
  net::HttpClientRequest ready;
  ready.target = "/ready";
  const auto r = client.request(ready);
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->status, 200);

  // The internal key is required for generation.
  net::HttpClientRequest gen;
  gen.method = "POST";
  gen.target = "/v1/completions";
  gen.body = R"({"model":"stories","prompt":"Once","max_tokens":4})";
  EXPECT_EQ(client.request(gen)->status, 401);
  gen.headers.set("Authorization", "Bearer sk-spw-test-internal");
  EXPECT_EQ(client.request(gen)->status, 200);

  // The real /metrics text parses, and the health check reads its load fields.
  net::HttpClientRequest metrics;
  metrics.target = "/metrics";
  const auto m = client.request(metrics);
  ASSERT_TRUE(m.ok());
  const auto samples = parse_prometheus_text(m->body);
  ASSERT_TRUE(samples.ok()) << samples.error().to_string();
  // Every finish reason is exported (the count itself may lag the response).
  EXPECT_TRUE(
      find_sample(*samples, "spillway:request_success_total", {{"finished_reason", "length"}})
          .has_value());
  const auto ttft = extract_histogram(*samples, "spillway:time_to_first_token_seconds");
  ASSERT_TRUE(ttft.ok());
  ASSERT_FALSE(ttft->empty());
  EXPECT_EQ(ttft->back().cumulative_count, 1.0);

  HealthOptions h;
  h.port = port;
  h.api_key = "sk-spw-test-internal";
  HealthChecker checker(h);
  const auto report = checker.check();
  ASSERT_TRUE(report.ok()) << report.error().to_string();
  EXPECT_TRUE(report->ready);
  EXPECT_GT(report->ttft_p50_s, 0);  // The one request above, first seen by this checker.
  // The load gauges, like the counters above, may lag the response by the engine's last step
  // (seen once under ASan on two busy cores): they settle at zero.
  HealthReport load = *report;
  EXPECT_TRUE(testing::wait_until([&] {
    if (load.running == 0 && load.waiting == 0) return true;
    if (auto again = checker.check(); again.ok()) load = *again;
    return false;
  }));
  EXPECT_EQ(load.running, 0);
  EXPECT_EQ(load.waiting, 0);

  // SIGTERM: a graceful exit with status 0, reaped, pid gone.
  const pid_t pid = (*p)->pid();
  const ExitStatus exit = (*p)->terminate(std::chrono::seconds(30));
  EXPECT_EQ(exit.exit_code, 0);
  EXPECT_EQ(exit.signal, 0);
  EXPECT_FALSE(process_exists(pid));
  EXPECT_TRUE((*p)->poll().has_value());
  bool saw_ready = false;
  for (const auto& line : (*p)->recent_output())
    saw_ready |= parse_ready_line(line).has_value();
  EXPECT_TRUE(saw_ready);

  // The checker now fails: nothing listens.
  EXPECT_FALSE(checker.check().ok());
}

TEST(ReplicaProcess, KillIsSeenByPollAndTheDestructorReaps) {
  SPW_REQUIRE_SHARED_FILE(model_path());
  pid_t pid = 0;
  {
    auto p = ReplicaProcess::launch(stories_command(), quiet("t2"));
    ASSERT_TRUE(p.ok()) << p.error().to_string();
    pid = (*p)->pid();
    ASSERT_TRUE((*p)->wait_for_port(kWaitLimit));
    EXPECT_FALSE((*p)->poll().has_value());
    (*p)->kill();
    ASSERT_TRUE(testing::wait_until([&] { return (*p)->poll().has_value(); }));
    EXPECT_EQ((*p)->poll()->signal, SIGKILL);
    EXPECT_EQ((*p)->poll()->exit_code, -1);
  }
  EXPECT_FALSE(process_exists(pid));
  {  // A running child is killed and reaped by the destructor.
    auto p = ReplicaProcess::launch(stories_command(), quiet("t3"));
    ASSERT_TRUE(p.ok());
    pid = (*p)->pid();
  }
  EXPECT_FALSE(process_exists(pid));
}

TEST(ReplicaProcess, ReportsAFailingReplicaAndABadBinary) {
  SPW_REQUIRE_SHARED_FILE(model_path());
  ReplicaCommand c = stories_command();
  c.model_path = "/nonexistent/model.gguf";
  auto p = ReplicaProcess::launch(c, quiet("t4"));
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  EXPECT_FALSE((*p)->wait_for_port(kWaitLimit));  // Stderr closes without a ready line.
  ASSERT_TRUE(testing::wait_until([&] { return (*p)->poll().has_value(); }));
  EXPECT_NE((*p)->poll()->exit_code, 0);
  const auto out = (*p)->recent_output();
  ASSERT_FALSE(out.empty());
  EXPECT_NE(out.back().find("nonexistent"), std::string::npos) << out.back();

  c = stories_command();
  c.binary = "/nonexistent/spillway";
  EXPECT_EQ(ReplicaProcess::launch(c, quiet("t5")).error().code(), ErrorCode::kNotFound);
  c.binary = spillway_bin();
  c.model_path.clear();
  EXPECT_EQ(ReplicaProcess::launch(c, quiet("t6")).error().code(), ErrorCode::kInvalidArgument);
}

TEST(ReplicaProcess, CutsLongLinesAndKeepsOnlyRecentOnes) {
  // /bin/sh stands in for spillway: argv[1] is "serve", so run a script that prints lines.
  const auto dir = spillway::testing::temp_dir("control_long_lines");
  const std::string script = (dir / "fake").string();
  {
    std::FILE* f = std::fopen(script.c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(
        "#!/bin/sh\nfor i in 1 2 3 4 5; do echo line$i >&2; done\n"
        "printf '%0300d\\n' 0 >&2\n"
        "echo 'x info  ready url=http://127.0.0.1:4242/v1' >&2\n",
        f);
    std::fclose(f);
  }
  ASSERT_EQ(::chmod(script.c_str(), 0755), 0);
  ReplicaCommand c = stories_command();
  c.binary = script;
  LaunchOptions o = quiet("t7");
  o.max_line_bytes = 100;
  o.kept_lines = 3;
  auto p = ReplicaProcess::launch(c, o);
  ASSERT_TRUE(p.ok()) << p.error().to_string();
  ASSERT_TRUE((*p)->wait_for_port(kWaitLimit));
  EXPECT_EQ((*p)->port(), 4242);
  ASSERT_TRUE(testing::wait_until([&] { return (*p)->poll().has_value(); }));
  EXPECT_EQ((*p)->poll()->exit_code, 0);
  std::vector<std::string> out;
  ASSERT_TRUE(testing::wait_until([&] {
    out = (*p)->recent_output();
    return out.size() == 3 && out.back().find("ready") != std::string::npos;
  }));
  EXPECT_EQ(out[0], "line5");
  EXPECT_EQ(out[1].size(), 100u);
}

}  // namespace
}  // namespace spillway::control
