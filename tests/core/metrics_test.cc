#include "core/metrics.h"

#include <gtest/gtest.h>

#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace spillway {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    out.push_back(line);
  return out;
}

TEST(Metrics, CounterAndGaugeRendering) {
  MetricsRegistry reg;
  Counter& c = reg.counter("spillway:prompt_tokens_total", "Prompt tokens processed.");
  c.inc(5);
  c.inc();
  Gauge& g =
      reg.gauge("spillway:num_requests_running", "Requests in the batch.", {{"model", "stories"}});
  g.set(3);
  g.add(-1);
  reg.gauge_fn("spillway:kv_cache_usage_perc", "KV cache use, 0..1.", [] { return 0.25; });
  EXPECT_EQ(reg.render_prometheus(),
            "# HELP spillway:prompt_tokens_total Prompt tokens processed.\n"
            "# TYPE spillway:prompt_tokens_total counter\n"
            "spillway:prompt_tokens_total 6\n"
            "# HELP spillway:num_requests_running Requests in the batch.\n"
            "# TYPE spillway:num_requests_running gauge\n"
            "spillway:num_requests_running{model=\"stories\"} 2\n"
            "# HELP spillway:kv_cache_usage_perc KV cache use, 0..1.\n"
            "# TYPE spillway:kv_cache_usage_perc gauge\n"
            "spillway:kv_cache_usage_perc 0.25\n");
}

TEST(Metrics, SameNameAndLabelsReturnsSameMetric) {
  MetricsRegistry reg;
  Counter& a = reg.counter("x_total", "x", {{"tenant", "a"}});
  Counter& b = reg.counter("x_total", "x", {{"tenant", "b"}});
  Counter& a2 = reg.counter("x_total", "x", {{"tenant", "a"}});
  EXPECT_EQ(&a, &a2);
  EXPECT_NE(&a, &b);
  a.inc();
  b.inc(2);
  const std::string text = reg.render_prometheus();
  EXPECT_NE(text.find("x_total{tenant=\"a\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("x_total{tenant=\"b\"} 2\n"), std::string::npos);
  // One HELP/TYPE pair per family, not per series.
  EXPECT_EQ(text.find("# TYPE x_total"), text.rfind("# TYPE x_total"));
}

TEST(Metrics, LabelValuesAndHelpAreEscaped) {
  MetricsRegistry reg;
  reg.counter("esc_total", "line one\nback\\slash", {{"path", "C:\\dir \"q\"\nnext"}}).inc();
  const auto lines = lines_of(reg.render_prometheus());
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0], "# HELP esc_total line one\\nback\\\\slash");
  EXPECT_EQ(lines[2], "esc_total{path=\"C:\\\\dir \\\"q\\\"\\nnext\"} 1");
}

TEST(Metrics, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  MetricsRegistry reg;
  Histogram& h = reg.histogram("spillway:time_to_first_token_seconds", "TTFT.", {0.1, 0.5, 1.0},
                               {{"model", "m"}});
  for (double v : {0.05, 0.1, 0.2, 0.7, 3.0})
    h.observe(v);
  EXPECT_EQ(reg.render_prometheus(),
            "# HELP spillway:time_to_first_token_seconds TTFT.\n"
            "# TYPE spillway:time_to_first_token_seconds histogram\n"
            "spillway:time_to_first_token_seconds_bucket{model=\"m\",le=\"0.1\"} 2\n"
            "spillway:time_to_first_token_seconds_bucket{model=\"m\",le=\"0.5\"} 3\n"
            "spillway:time_to_first_token_seconds_bucket{model=\"m\",le=\"1\"} 4\n"
            "spillway:time_to_first_token_seconds_bucket{model=\"m\",le=\"+Inf\"} 5\n"
            "spillway:time_to_first_token_seconds_sum{model=\"m\"} 4.05\n"
            "spillway:time_to_first_token_seconds_count{model=\"m\"} 5\n");
}

// Checks the text format's structural rules on a rendered registry: every sample belongs to a
// family announced by HELP then TYPE; histogram buckets are non-decreasing and end in +Inf
// equal to _count.
TEST(Metrics, RenderedTextFollowsFormatRules) {
  MetricsRegistry reg;
  reg.counter("a_total", "a").inc(2);
  Histogram& h = reg.histogram("lat_seconds", "latency", latency_buckets_seconds());
  for (int i = 0; i < 1000; ++i)
    h.observe(i * 0.07);
  reg.gauge("g", "g").set(-1.5);

  std::string family, type;
  double last_bucket = -1;
  bool saw_inf = false;
  double inf_value = -1;
  for (const std::string& line : lines_of(reg.render_prometheus())) {
    if (line.rfind("# HELP ", 0) == 0) {
      family = line.substr(7, line.find(' ', 7) - 7);
      type.clear();
      last_bucket = -1;
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      ASSERT_EQ(line.substr(7, family.size()), family);
      type = line.substr(8 + family.size());
      continue;
    }
    ASSERT_FALSE(type.empty()) << "sample before TYPE: " << line;
    const std::string name = line.substr(0, line.find_first_of("{ "));
    ASSERT_EQ(name.rfind(family, 0), 0u) << line;
    const double value = std::stod(line.substr(line.rfind(' ') + 1));
    if (type == "histogram" && name == family + "_bucket") {
      EXPECT_GE(value, last_bucket) << line;
      last_bucket = value;
      if (line.find("le=\"+Inf\"") != std::string::npos) {
        saw_inf = true;
        inf_value = value;
      }
    }
    if (type == "histogram" && name == family + "_count") {
      EXPECT_EQ(value, inf_value);
    }
  }
  EXPECT_TRUE(saw_inf);
  EXPECT_EQ(inf_value, 1000);
}

TEST(Metrics, NameRules) {
  EXPECT_TRUE(is_valid_metric_name("spillway:num_requests_running"));
  EXPECT_FALSE(is_valid_metric_name("1abc"));
  EXPECT_FALSE(is_valid_metric_name("has-dash"));
  EXPECT_TRUE(is_valid_label_name("tenant_id"));
  EXPECT_FALSE(is_valid_label_name("__reserved"));
  EXPECT_FALSE(is_valid_label_name("a:b"));
  MetricsRegistry reg;
  EXPECT_THROW(reg.counter("bad name", "x"), std::logic_error);
  reg.counter("dup", "x");
  EXPECT_THROW(reg.gauge("dup", "x"), std::logic_error);
  EXPECT_THROW(reg.counter("ok_total", "x", {{"le", "1"}}), std::logic_error);
}

TEST(Metrics, ValueFormatting) {
  EXPECT_EQ(format_metric_value(3), "3");
  EXPECT_EQ(format_metric_value(0.25), "0.25");
  EXPECT_EQ(format_metric_value(1.0 / 0.0), "+Inf");
  EXPECT_EQ(format_metric_value(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(format_metric_value(0.0 / 0.0), "NaN");
}

TEST(Metrics, ConcurrentUpdatesAreNotLost) {
  MetricsRegistry reg;
  Counter& c = reg.counter("n_total", "n");
  Histogram& h = reg.histogram("h", "h", {1.0});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) {
        c.inc();
        h.observe(0.5);
      }
    });
  }
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(c.value(), 40000);
  EXPECT_EQ(h.count(), 40000u);
  EXPECT_EQ(h.sum(), 20000);
}

}  // namespace
}  // namespace spillway
