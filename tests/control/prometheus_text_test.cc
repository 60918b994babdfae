// The Prometheus text reader, histogram quantiles, and the replica /metrics extraction.
#include "control/prometheus_text.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/metrics.h"

#include "control/control_options.h"
#include "control/health.h"
#include "control/replica_launcher.h"

namespace spillway::control {
namespace {

TEST(PrometheusText, ParsesSamplesLabelsEscapesAndSpecialValues) {
  const auto samples = parse_prometheus_text(
      "# HELP x_total Things.\n"
      "# TYPE x_total counter\n"
      "x_total 3\n"
      "a:b{k=\"v\",q=\"a\\\"b\\\\c\\nd\"} -1.5e3 1700000000000\n"
      "\n"
      "inf_metric{le=\"+Inf\"} +Inf\r\n"
      "nan_metric NaN\n"
      "  spaced{ k = \"v\" , } 7\n");
  ASSERT_TRUE(samples.ok()) << samples.error().to_string();
  ASSERT_EQ(samples->size(), 5u);
  EXPECT_EQ((*samples)[0].name, "x_total");
  EXPECT_EQ((*samples)[0].value, 3);
  EXPECT_EQ((*samples)[1].name, "a:b");
  EXPECT_EQ((*samples)[1].value, -1500);
  EXPECT_EQ((*samples)[1].label("q"), "a\"b\\c\nd");
  EXPECT_TRUE(std::isinf((*samples)[2].value));
  EXPECT_TRUE(std::isnan((*samples)[3].value));
  EXPECT_EQ((*samples)[4].label("k"), "v");
  EXPECT_EQ(find_sample(*samples, "a:b", {{"k", "v"}}), -1500);
  EXPECT_EQ(find_sample(*samples, "a:b", {{"k", "w"}}), std::nullopt);
}

TEST(PrometheusText, RejectsMalformedLinesNamingTheLine) {
  for (const char* bad :
       {"x{k=\"v\" 1\n", "x{k=v} 1\n", "x one\n", "x{k=\"\\t\"} 1\n", "1x 2\n", "x{k=\"v\"}1\n",
        "x 1 2 3\n", "x 1 notatime\n", "x{k=\"unterminated} 1\n"}) {
    const auto r = parse_prometheus_text(std::string("ok 1\n") + bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss) << bad;
    EXPECT_NE(r.error().message().find("line 2"), std::string::npos) << r.error().message();
  }
}

TEST(PrometheusText, EnforcesLimits) {
  PrometheusLimits limits;
  limits.max_bytes = 10;
  EXPECT_EQ(parse_prometheus_text("a_long_metric 1\n", limits).error().code(),
            ErrorCode::kPayloadTooLarge);
  limits = {};
  limits.max_samples = 2;
  EXPECT_EQ(parse_prometheus_text("a 1\nb 2\nc 3\n", limits).error().code(),
            ErrorCode::kPayloadTooLarge);
  limits = {};
  limits.max_labels_per_sample = 1;
  EXPECT_FALSE(parse_prometheus_text("a{x=\"1\",y=\"2\"} 1\n", limits).ok());
}

TEST(PrometheusText, HistogramQuantileInterpolatesLikePrometheus) {
  // 10 observations: 4 in (0, 1], 4 in (1, 2], 2 in (2, +Inf).
  const std::vector<HistogramBucket> b = {{1, 4}, {2, 8}, {INFINITY, 10}};
  EXPECT_DOUBLE_EQ(*histogram_quantile(0.5, b), 1.25);  // rank 5: 1/4 into (1, 2].
  EXPECT_DOUBLE_EQ(*histogram_quantile(0.2, b), 0.5);   // rank 2: halfway through (0, 1].
  EXPECT_DOUBLE_EQ(*histogram_quantile(0.95, b), 2.0);  // In +Inf: the largest finite bound.
  EXPECT_EQ(histogram_quantile(0.5, {{1, 0}, {INFINITY, 0}}), std::nullopt);
  EXPECT_EQ(histogram_quantile(0.5, {}), std::nullopt);
}

TEST(PrometheusText, HistogramDeltaAndReset) {
  const std::vector<HistogramBucket> before = {{1, 4}, {2, 8}, {INFINITY, 10}};
  const std::vector<HistogramBucket> after = {{1, 4}, {2, 10}, {INFINITY, 12}};
  const auto d = histogram_delta(after, before);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].cumulative_count, 0);
  EXPECT_EQ(d[1].cumulative_count, 2);
  EXPECT_EQ(d[2].cumulative_count, 2);
  EXPECT_DOUBLE_EQ(*histogram_quantile(0.5, d), 1.5);
  // A restarted process: counts went down, so the new histogram stands alone.
  const std::vector<HistogramBucket> restarted = {{1, 1}, {2, 1}, {INFINITY, 1}};
  EXPECT_EQ(histogram_delta(restarted, before)[0].cumulative_count, 1);
}

TEST(PrometheusText, ExtractsTheServingMetricsOfARegistry) {
  MetricsRegistry m;
  m.gauge("spillway:num_requests_running", "r").set(3);
  m.gauge("spillway:num_requests_waiting", "w").set(5);
  m.gauge("spillway:kv_cache_usage_perc", "kv").set(0.25);
  Histogram& ttft =
      m.histogram("spillway:time_to_first_token_seconds", "t", latency_buckets_seconds());
  for (int i = 0; i < 10; ++i)
    ttft.observe(0.003);
  std::vector<HistogramBucket> previous;
  auto first = parse_replica_metrics(m.render_prometheus(), previous);
  ASSERT_TRUE(first.ok()) << first.error().to_string();
  EXPECT_EQ(first->running, 3);
  EXPECT_EQ(first->waiting, 5);
  EXPECT_DOUBLE_EQ(first->kv_usage, 0.25);
  EXPECT_GT(first->ttft_p50_s, 0.001);
  EXPECT_LE(first->ttft_p50_s, 0.005);
  // No new observations: unknown; then only the new, slow ones count.
  auto idle = parse_replica_metrics(m.render_prometheus(), previous);
  ASSERT_TRUE(idle.ok());
  EXPECT_EQ(idle->ttft_p50_s, 0);
  for (int i = 0; i < 3; ++i)
    ttft.observe(2.0);
  auto slow = parse_replica_metrics(m.render_prometheus(), previous);
  ASSERT_TRUE(slow.ok());
  EXPECT_GT(slow->ttft_p50_s, 1.0);
  // A text without the serving gauges is refused.
  EXPECT_EQ(parse_replica_metrics("other 1\n", previous).error().code(), ErrorCode::kDataLoss);
}

TEST(ReadyLine, ParsesTheServeReadyLineOnly) {
  const auto a = parse_ready_line(
      "2026-11-22T19:40:03.123Z info  ready url=http://127.0.0.1:43117/v1 model=stories "
      "context=512");
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 43117);
  EXPECT_FALSE(parse_ready_line("2026 info  shutting down signal=SIGTERM").has_value());
  EXPECT_FALSE(parse_ready_line("x info  ready url=http://127.0.0.1:0/v1").has_value());
  EXPECT_FALSE(parse_ready_line("x info  ready url=http://127.0.0.1:99999/v1").has_value());
  EXPECT_FALSE(parse_ready_line("x info  ready url=http://127.0.0.1/v1").has_value());
}

TEST(ReplicaArgv, CarriesTheFlagsButNeverTheKey) {
  ReplicaCommand c;
  c.binary = "/bin/spillway";
  c.model_path = "/m.gguf";
  c.model_name = "stories";
  c.threads = 2;
  c.kv_cache_mib = 16;
  c.kv_type = "q8_0";
  c.api_key = "sk-spw-secret";
  const auto argv = replica_argv(c);
  const std::string joined = [&] {
    std::string s;
    for (const auto& a : argv)
      s += a + " ";
    return s;
  }();
  EXPECT_EQ(argv[0], "/bin/spillway");
  EXPECT_EQ(argv[1], "serve");
  for (const char* want : {"--model /m.gguf", "--model-name stories", "--port 0", "--threads 2",
                           "--kv-cache-mib 16", "--kv-type q8_0", "--host 127.0.0.1"}) {
    EXPECT_NE(joined.find(want), std::string::npos) << want;
  }
  // The key travels in the environment (replica_environment), never in argv.
  EXPECT_EQ(joined.find("secret"), std::string::npos);
  EXPECT_EQ(joined.find("--api-key"), std::string::npos);
}

TEST(ControlOptions, ValidateNamesTheField) {
  EXPECT_TRUE(ControlOptions{}.validate().ok());
  ControlOptions o;
  o.reconcile_interval = Nanos::zero();
  EXPECT_NE(o.validate().error().message().find("reconcile_interval"), std::string::npos);
  o = {};
  o.restart_backoff_initial = std::chrono::seconds(60);
  EXPECT_NE(o.validate().error().message().find("restart_backoff_initial"), std::string::npos);
  o = {};
  o.failures_to_eject = 0;
  EXPECT_NE(o.validate().error().message().find("failures_to_eject"), std::string::npos);
  o = {};
  o.autoscaler.scale_in_kv_usage = 0.9;
  EXPECT_NE(o.validate().error().message().find("autoscaler"), std::string::npos);
}

}  // namespace
}  // namespace spillway::control
