#include "sim/workload.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/request_trace.h"

#include "fleet/fleet_spec.h"

#include "sim/diurnal.h"
#include "sim/length_sampler.h"
#include "sim/mau_workload.h"
#include "sim/tenant_mix.h"

#include "test_support.h"

namespace spillway::sim {
namespace {

using std::chrono::seconds;

std::vector<TenantShare> one_tenant() {
  TenantShare t;
  t.name = "t";
  t.model = "m";
  t.cache_namespace = "tenant/t";
  return {t};
}

WorkloadOptions options_with(std::vector<TenantShare> tenants, std::uint64_t seed = 1) {
  WorkloadOptions o;
  o.tenants = std::move(tenants);
  o.seed = seed;
  return o;
}

std::string write_file(const std::string& test, const std::string& text) {
  const auto path = testing::temp_dir("workload_" + test) / "trace.csv";
  std::ofstream(path) << text;
  return path.string();
}

// An Azure-format CSV whose i-th row arrives at times_s[i] (rounded to 0.1 µs) with lengths
// (100 + i, 10 + i).
std::string azure_csv(const std::vector<double>& times_s) {
  std::string text = "TIMESTAMP,ContextTokens,GeneratedTokens\r\n";
  for (std::size_t i = 0; i < times_s.size(); ++i) {
    const long long ticks = std::llround(times_s[i] * 1e7);  // 100 ns units.
    const long long whole = ticks / 10'000'000;
    text += fmt::format("2023-11-16 {:02d}:{:02d}:{:02d}.{:07d},{},{}\r\n", 18 + whole / 3600,
                        whole / 60 % 60, whole % 60, ticks % 10'000'000, 100 + i, 10 + i);
  }
  return text;
}

std::vector<SimRequest> drain(Workload& w, std::size_t limit = 50'000'000) {
  std::vector<SimRequest> out;
  while (auto r = w.next()) {
    out.push_back(*r);
    if (out.size() >= limit) break;
  }
  return out;
}

std::unique_ptr<Workload> make(const std::string& spec_text, const WorkloadOptions& options) {
  auto spec = parse_workload_spec(spec_text);
  EXPECT_TRUE(spec.ok()) << spec.error().to_string();
  auto w = make_workload(*spec, options);
  EXPECT_TRUE(w.ok()) << w.error().to_string();
  return w.ok() ? std::move(w).value() : nullptr;
}

bool same(const SimRequest& a, const SimRequest& b) {
  return a.id == b.id && a.arrival == b.arrival && a.tenant == b.tenant && a.model == b.model &&
         a.priority == b.priority && a.cache_namespace == b.cache_namespace &&
         a.prompt_tokens == b.prompt_tokens && a.output_tokens == b.output_tokens &&
         a.prefix_id == b.prefix_id && a.prefix_tokens == b.prefix_tokens;
}

// ---- Spec syntax -------------------------------------------------------------------------

TEST(WorkloadSpec, ParsesTrace) {
  auto spec = parse_workload_spec("trace:/data/x.csv,scale=0.5,rate=3,length=0.25");
  ASSERT_TRUE(spec.ok()) << spec.error().to_string();
  EXPECT_EQ(spec->kind, WorkloadSpec::Kind::kTrace);
  EXPECT_EQ(spec->path, "/data/x.csv");
  EXPECT_EQ(spec->time_scale, 0.5);
  EXPECT_EQ(spec->rate, 3);
  EXPECT_TRUE(spec->rate_set);
  EXPECT_EQ(spec->length_scale, 0.25);
  auto plain = parse_workload_spec("trace:a.csv");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->rate, 1);
  EXPECT_FALSE(plain->rate_set);
}

TEST(WorkloadSpec, ParsesMau) {
  auto spec = parse_workload_spec("mau:100M,hours=2,start_hour=9.5,lengths=l.csv,length=2");
  ASSERT_TRUE(spec.ok()) << spec.error().to_string();
  EXPECT_EQ(spec->kind, WorkloadSpec::Kind::kMau);
  EXPECT_EQ(spec->mau, 100'000'000);
  EXPECT_EQ(spec->hours, 2);
  EXPECT_EQ(spec->start_hour, 9.5);
  EXPECT_EQ(spec->lengths_path, "l.csv");
  EXPECT_EQ(spec->length_scale, 2);
  EXPECT_EQ(parse_workload_spec("mau:1500")->mau, 1500);
  EXPECT_EQ(parse_workload_spec("mau:3k")->mau, 3000);
  EXPECT_EQ(parse_workload_spec("mau:2B")->mau, 2'000'000'000);
  EXPECT_EQ(parse_workload_spec("mau:7")->start_hour, -1);
}

TEST(WorkloadSpec, ErrorsNameTheBadPart) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"nocolon", "kind"},
      {"poisson:3", "poisson"},
      {"trace:", "path"},
      {"trace:x.csv,scale=abc", "scale"},
      {"trace:x.csv,scale=inf", "scale"},
      {"trace:x.csv,speed=2", "speed"},
      {"trace:x.csv,rate=0", "rate"},
      {"trace:x.csv,length=-1", "length"},
      {"trace:x.csv,rate=1,rate=2", "given twice"},
      {"trace:x.csv,hours=2", "hours"},
      {"trace:x.csv,oops", "oops"},
      {"trace:x.csv,", "option"},
      {"mau:abc", "N"},
      {"mau:0", "N"},
      {"mau:99999999999B", "N"},
      {"mau:100M,hours=-1", "hours"},
      {"mau:100M,hours=1x", "hours"},
      {"mau:1,start_hour=24", "start_hour"},
      {"mau:1,scale=2", "scale"},
      {"mau:1,lengths=", "lengths"},
  };
  for (const auto& [text, part] : cases) {
    auto spec = parse_workload_spec(text);
    ASSERT_FALSE(spec.ok()) << text;
    EXPECT_EQ(spec.error().code(), ErrorCode::kInvalidArgument) << text;
    EXPECT_NE(spec.error().message().find(part), std::string::npos)
        << text << " -> " << spec.error().message();
  }
}

// ---- Trace replay --------------------------------------------------------------------------

TEST(TraceWorkload, ReplaysASmallTraceExactly) {
  const std::vector<double> times = {0, 0.5, 1.25, 1.25, 3.000001, 7.5, 61.125};
  const auto path = write_file("small", azure_csv(times));
  auto trace = load_request_trace(path);
  ASSERT_TRUE(trace.ok());
  auto w = make("trace:" + path, options_with(one_tenant()));
  ASSERT_NE(w, nullptr);
  const auto out = drain(*w);
  ASSERT_EQ(out.size(), times.size());
  for (std::size_t i = 0; i < times.size(); ++i) {
    EXPECT_EQ(out[i].id, i + 1);
    // Exactly the parsed trace's times; those are within the double precision of absolute
    // timestamps (~0.25 µs) of the written ones.
    EXPECT_EQ(out[i].arrival, Nanos{std::llround(trace->requests[i].arrival_s * 1e9)}) << i;
    EXPECT_NEAR(static_cast<double>(out[i].arrival.count()), times[i] * 1e9, 500) << i;
    EXPECT_EQ(out[i].prompt_tokens, static_cast<std::int32_t>(100 + i));
    EXPECT_EQ(out[i].output_tokens, static_cast<std::int32_t>(10 + i));
    EXPECT_EQ(out[i].tenant, "t");
    EXPECT_EQ(out[i].model, "m");
    EXPECT_EQ(out[i].cache_namespace, "tenant/t");
    EXPECT_EQ(out[i].prefix_id, 0u);
    EXPECT_TRUE(validate_sim_request(out[i]).ok());
  }
  EXPECT_FALSE(w->next().has_value());
}

TEST(TraceWorkload, ScaleStretchesTimeAndLengthScalesTokens) {
  const auto path = write_file("scale", azure_csv({0, 1, 2.5}));
  auto w = make("trace:" + path + ",scale=2,length=0.5", options_with(one_tenant()));
  ASSERT_NE(w, nullptr);
  const auto out = drain(*w);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].arrival, seconds(2));
  EXPECT_EQ(out[2].arrival, seconds(5));
  EXPECT_EQ(out[0].prompt_tokens, 50);
  EXPECT_EQ(out[1].prompt_tokens, 51);  // 101 / 2 = 50.5, rounded away from zero.
  EXPECT_EQ(out[2].output_tokens, 6);
  // Peak: the trace is shorter than 60 s, so its mean rate (2 gaps in 2.5 s), halved by scale.
  EXPECT_DOUBLE_EQ(w->peak_rate(), 2 / 2.5 / 2);
}

TEST(TraceWorkload, DurationEndsTheStream) {
  const auto path = write_file("duration", azure_csv({0, 1, 2, 3, 4}));
  WorkloadOptions o = options_with(one_tenant());
  o.duration = seconds(2);
  auto w = make("trace:" + path, o);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(drain(*w).size(), 2u);  // Arrivals at 0 and 1 s; 2 s is not before the end.
}

TEST(TraceWorkload, ReplaysTheAzureTracesExactly) {
  for (const char* file :
       {"traces/AzureLLMInferenceTrace_conv.csv", "traces/AzureLLMInferenceTrace_code.csv"}) {
    const std::string path = testing::shared_path(file);
    SPW_REQUIRE_SHARED_FILE(path);
    auto trace = load_request_trace(path);
    ASSERT_TRUE(trace.ok());
    auto w = make("trace:" + path, options_with(one_tenant()));
    ASSERT_NE(w, nullptr);
    const auto out = drain(*w);
    ASSERT_EQ(out.size(), trace->requests.size());
    for (std::size_t i = 0; i < out.size(); ++i) {
      const TraceRequest& r = trace->requests[i];
      ASSERT_EQ(out[i].arrival, Nanos{std::llround(r.arrival_s * 1e9)}) << file << " " << i;
      ASSERT_EQ(out[i].prompt_tokens, r.context_tokens) << i;
      ASSERT_EQ(out[i].output_tokens, r.generated_tokens) << i;
    }
    // The conversation trace's busiest minute is above its mean rate of ~5.5 requests/s.
    EXPECT_GT(w->peak_rate(), static_cast<double>(out.size()) / 3600);
  }
}

// A trace of 2,000 rows with uneven gaps, times with 1 µs resolution.
std::vector<double> uneven_times() {
  std::vector<double> times;
  double t = 0;
  for (int i = 0; i < 2000; ++i) {
    times.push_back(t);
    t += (i % 7 == 0) ? 0.25 : 0.01 * (1 + i % 5);
  }
  return times;
}

TEST(TraceWorkload, RateMultiplierSuperposesJitteredCopiesInOrder) {
  const auto path = write_file("rate3", azure_csv(uneven_times()));
  auto trace = load_request_trace(path);
  ASSERT_TRUE(trace.ok());
  std::vector<double> times;  // As parsed.
  for (const auto& r : trace->requests)
    times.push_back(r.arrival_s);
  auto w = make("trace:" + path + ",rate=3", options_with(one_tenant()));
  ASSERT_NE(w, nullptr);
  const auto out = drain(*w);
  ASSERT_EQ(out.size(), 3 * times.size());
  std::multiset<std::int64_t> arrivals;
  for (std::size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i].id, i + 1);
    if (i > 0) {
      ASSERT_GE(out[i].arrival, out[i - 1].arrival) << i;
    }
    arrivals.insert(out[i].arrival.count());
  }
  // Copy 0 is the trace itself; each jittered copy puts row k between t_k and t_{k+1}, so
  // exactly 3k + 1 .. 3(k + 1) arrivals happen by t_k.
  std::size_t exact = 0;
  for (std::size_t k = 0; k < times.size(); ++k) {
    const auto tk = std::llround(times[k] * 1e9);
    exact += arrivals.count(tk) > 0 ? 1 : 0;
    const auto by_tk =
        static_cast<std::size_t>(std::distance(arrivals.begin(), arrivals.upper_bound(tk)));
    ASSERT_GE(by_tk, 3 * k + 1) << k;
    ASSERT_LE(by_tk, 3 * (k + 1)) << k;
  }
  EXPECT_EQ(exact, times.size());
  // Every row's lengths appear three times.
  std::map<std::int32_t, int> per_row;
  for (const auto& r : out)
    ++per_row[r.prompt_tokens];
  for (const auto& [prompt, n] : per_row)
    EXPECT_EQ(n, 3) << prompt;
  const double span = times.back();
  EXPECT_NEAR(w->peak_rate(), 3 * 2000 / span, 3 * 2000 / span);
}

TEST(TraceWorkload, FractionalRateThinsTheLastCopy) {
  const auto times = uneven_times();
  const auto path = write_file("rate25", azure_csv(times));
  auto w = make("trace:" + path + ",rate=2.5", options_with(one_tenant()));
  ASSERT_NE(w, nullptr);
  const auto out = drain(*w);
  // 2 whole copies + Binomial(2000, 0.5): sd 22.4.
  const double expected = 2.5 * static_cast<double>(times.size());
  EXPECT_NEAR(static_cast<double>(out.size()), expected, 5 * std::sqrt(2000 * 0.25));
  for (std::size_t i = 1; i < out.size(); ++i)
    ASSERT_GE(out[i].arrival, out[i - 1].arrival);
}

TEST(TraceWorkload, SameSeedSameStreamOtherSeedOtherStream) {
  const auto path = write_file("seed", azure_csv(uneven_times()));
  std::vector<TenantShare> two = one_tenant();
  two.push_back(two[0]);
  two[1].name = "u";
  auto run = [&](std::uint64_t seed) {
    return drain(*make("trace:" + path + ",rate=2", options_with(two, seed)));
  };
  const auto a = run(7);
  const auto b = run(7);
  const auto c = run(8);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    ASSERT_TRUE(same(a[i], b[i])) << i;
  ASSERT_EQ(a.size(), c.size());
  std::size_t arrival_diff = 0, tenant_diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    arrival_diff += a[i].arrival != c[i].arrival;
    tenant_diff += a[i].tenant != c[i].tenant;
  }
  EXPECT_GT(arrival_diff, a.size() / 4);
  EXPECT_GT(tenant_diff, a.size() / 4);
}

TEST(TraceWorkload, TimelessTraceNeedsARateAndGetsPoissonArrivals) {
  std::string text = "num_prefill_tokens,num_decode_tokens,num_total_tokens,pd_ratio\n";
  for (int i = 0; i < 4000; ++i)
    text += fmt::format("{},{},{},0.5\n", 10 + i, 5 + i, 15 + 2 * i);
  const auto path = write_file("timeless", text);
  auto spec = parse_workload_spec("trace:" + path);
  ASSERT_TRUE(spec.ok());
  auto missing_rate = make_workload(*spec, options_with(one_tenant()));
  ASSERT_FALSE(missing_rate.ok());
  EXPECT_NE(missing_rate.error().message().find("rate="), std::string::npos);

  auto w = make("trace:" + path + ",rate=200", options_with(one_tenant()));
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->peak_rate(), 200);
  const auto out = drain(*w);
  ASSERT_EQ(out.size(), 4000u);
  for (std::size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i].prompt_tokens, static_cast<std::int32_t>(10 + i));
    if (i > 0) {
      ASSERT_GE(out[i].arrival, out[i - 1].arrival);
    }
  }
  // Sum of 4000 exponential gaps of mean 5 ms: mean 20 s, sd 0.32 s.
  EXPECT_NEAR(to_seconds(out.back().arrival), 20.0, 5 * 20.0 / std::sqrt(4000.0));
}

TEST(TraceWorkload, Errors) {
  auto spec = parse_workload_spec("trace:/nonexistent/trace.csv");
  ASSERT_TRUE(spec.ok());
  auto missing = make_workload(*spec, options_with(one_tenant()));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);

  const auto empty = write_file("empty", "TIMESTAMP,ContextTokens,GeneratedTokens\n");
  auto e = make_workload(*parse_workload_spec("trace:" + empty), options_with(one_tenant()));
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().code(), ErrorCode::kInvalidArgument);

  const auto path = write_file("errors", azure_csv({0, 1}));
  auto too_many = make_workload(*parse_workload_spec("trace:" + path + ",rate=20000"),
                                options_with(one_tenant()));
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.error().message().find("rate"), std::string::npos);

  auto no_tenants = make_workload(*parse_workload_spec("trace:" + path), options_with({}));
  ASSERT_FALSE(no_tenants.ok());
  EXPECT_NE(no_tenants.error().message().find("tenants"), std::string::npos);

  WorkloadOptions bad_context = options_with(one_tenant());
  bad_context.max_context = 1;
  auto ctx = make_workload(*parse_workload_spec("trace:" + path), bad_context);
  ASSERT_FALSE(ctx.ok());
  EXPECT_NE(ctx.error().message().find("max_context"), std::string::npos);
}

TEST(TraceWorkload, ClipsToMaxContext) {
  std::string text = "TIMESTAMP,ContextTokens,GeneratedTokens\n";
  text += "2023-11-16 18:00:00.0000000,500,300\n";
  text += "2023-11-16 18:00:01.0000000,10,10\n";
  text += "2023-11-16 18:00:02.0000000,90,20\n";
  const auto path = write_file("clip", text);
  auto tenants = one_tenant();
  tenants[0].system_prompt_tokens = 64;
  WorkloadOptions o = options_with(tenants);
  o.max_context = 100;
  auto w = make("trace:" + path, o);
  ASSERT_NE(w, nullptr);
  const auto out = drain(*w);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].output_tokens, 50);  // At most half the context.
  EXPECT_EQ(out[0].prompt_tokens, 50);
  EXPECT_EQ(out[0].prefix_tokens, 50);  // The system prompt is cut with the prompt.
  EXPECT_EQ(out[1].prompt_tokens, 10);
  EXPECT_EQ(out[1].output_tokens, 10);
  EXPECT_EQ(out[1].prefix_tokens, 10);
  EXPECT_EQ(out[2].output_tokens, 20);
  EXPECT_EQ(out[2].prompt_tokens, 80);
  EXPECT_EQ(out[2].prefix_tokens, 64);
  for (const auto& r : out) {
    EXPECT_LE(r.prompt_tokens + r.output_tokens, 100);
    EXPECT_EQ(r.prefix_id, 1u);
    EXPECT_TRUE(validate_sim_request(r).ok());
  }
}

// ---- Tenant mix ----------------------------------------------------------------------------

TEST(TenantMix, PicksByWeightAndCopiesTheTenant) {
  std::vector<TenantShare> mix(2);
  mix[0] = {"chat", 3, fleet::Priority::kInteractive, "big", "shared/chat", 200, 1};
  mix[1] = {"batch", 1, fleet::Priority::kBatch, "small", "tenant/batch", 0, 1};
  WorkloadOptions o = options_with(mix);
  o.duration = seconds(600);
  auto w = make("mau:1M", o);  // ~17k requests in 10 minutes at the peak.
  ASSERT_NE(w, nullptr);
  const auto out = drain(*w);
  ASSERT_GT(out.size(), 10'000u);
  std::size_t chat = 0;
  for (const auto& r : out) {
    if (r.tenant == "chat") {
      ++chat;
      EXPECT_EQ(r.priority, fleet::Priority::kInteractive);
      EXPECT_EQ(r.model, "big");
      EXPECT_EQ(r.cache_namespace, "shared/chat");
      EXPECT_EQ(r.prefix_id, 1u);
      EXPECT_EQ(r.prefix_tokens, std::min(200, r.prompt_tokens));
    } else {
      ASSERT_EQ(r.tenant, "batch");
      EXPECT_EQ(r.priority, fleet::Priority::kBatch);
      EXPECT_EQ(r.model, "small");
      EXPECT_EQ(r.prefix_id, 0u);
      EXPECT_EQ(r.prefix_tokens, 0);
    }
  }
  const double n = static_cast<double>(out.size());
  EXPECT_NEAR(static_cast<double>(chat) / n, 0.75, 5 * std::sqrt(0.75 * 0.25 / n));
}

TEST(TenantMix, DefaultMixFromTheFleet) {
  fleet::FleetSpec fleet;
  fleet.models.resize(2);
  fleet.models[0].name = "a";
  fleet.models[1].name = "b";
  fleet::TenantSpec chat;
  chat.name = "chat";
  chat.priority = fleet::Priority::kInteractive;
  chat.cache_namespace = "shared/x";
  fleet::TenantSpec lab;
  lab.name = "lab";
  lab.priority = fleet::Priority::kBatch;
  lab.all_models = false;
  lab.models = {"b"};
  lab.cache_namespace = "tenant/lab";
  fleet.tenants = {chat, lab};
  TenantMixOptions mix_options;
  mix_options.system_prompt_tokens = 32;
  const auto mix = default_tenant_mix(fleet, mix_options);
  ASSERT_EQ(mix.size(), 3u);
  EXPECT_EQ(mix[0].name, "chat");
  EXPECT_EQ(mix[0].model, "a");
  EXPECT_EQ(mix[0].weight, 0.5);
  EXPECT_EQ(mix[0].priority, fleet::Priority::kInteractive);
  EXPECT_EQ(mix[0].cache_namespace, "shared/x");
  EXPECT_EQ(mix[0].system_prompt_tokens, 32);
  EXPECT_EQ(mix[1].model, "b");
  EXPECT_EQ(mix[2].name, "lab");
  EXPECT_EQ(mix[2].model, "b");
  EXPECT_EQ(mix[2].weight, 1);
  EXPECT_EQ(mix[2].priority, fleet::Priority::kBatch);
  EXPECT_TRUE(validate_tenant_mix(mix).ok());

  fleet.tenants.clear();
  const auto fallback = default_tenant_mix(fleet);
  ASSERT_EQ(fallback.size(), 2u);
  EXPECT_EQ(fallback[0].name, "default");
  EXPECT_EQ(fallback[0].cache_namespace, "tenant/default");
  EXPECT_EQ(fallback[0].priority, fleet::Priority::kStandard);
  EXPECT_EQ(fallback[1].model, "b");
  const auto bare = default_tenant_mix(fleet::FleetSpec{});
  ASSERT_EQ(bare.size(), 1u);
  EXPECT_EQ(bare[0].model, "");
}

TEST(TenantMix, ExampleFleetsHaveAMix) {
  // tests/sim/workload_test.cc -> repository root.
  const auto root = std::filesystem::path(__FILE__).parent_path().parent_path().parent_path();
  const std::string path = (root / "examples" / "fleet-64k.toml").string();
  auto fleet = fleet::load_fleet_spec(path);
  ASSERT_TRUE(fleet.ok()) << fleet.error().to_string();
  const auto mix = default_tenant_mix(*fleet);
  EXPECT_TRUE(validate_tenant_mix(mix).ok());
  std::set<std::string> names;
  for (const auto& share : mix) {
    names.insert(share.name);
    EXPECT_NE(fleet->find_model(share.model), nullptr) << share.model;
    EXPECT_TRUE(fleet->find_tenant(share.name)->allows_model(share.model));
  }
  EXPECT_EQ(names.size(), fleet->tenants.size());
}

TEST(TenantMix, ValidationNamesTheField) {
  auto bad = one_tenant();
  bad[0].weight = 0;
  EXPECT_NE(validate_tenant_mix(bad).error().message().find("weight"), std::string::npos);
  bad = one_tenant();
  bad[0].name = "";
  EXPECT_NE(validate_tenant_mix(bad).error().message().find("name"), std::string::npos);
  bad = one_tenant();
  bad[0].system_prompt_tokens = -1;
  EXPECT_NE(validate_tenant_mix(bad).error().message().find("system_prompt_tokens"),
            std::string::npos);
  bad = one_tenant();
  bad[0].conversation_turns = 0.5;
  EXPECT_NE(validate_tenant_mix(bad).error().message().find("conversation_turns"),
            std::string::npos);
  EXPECT_FALSE(validate_tenant_mix({}).ok());
}

TEST(TenantMix, ConversationsShareTheirHistory) {
  auto tenants = one_tenant();
  tenants[0].conversation_turns = 2;  // Half the turns continue a conversation.
  WorkloadOptions o = options_with(tenants);
  o.duration = seconds(600);
  o.think_time = seconds(5);
  auto w = make("mau:1M", o);
  ASSERT_NE(w, nullptr);
  const auto out = drain(*w);
  ASSERT_GT(out.size(), 10'000u);
  std::map<std::uint64_t, const SimRequest*> last;
  std::size_t follow_ups = 0;
  for (const auto& r : out) {
    ASSERT_NE(r.prefix_id, 0u);
    EXPECT_EQ(r.prefix_tokens, r.prompt_tokens);
    EXPECT_TRUE(validate_sim_request(r).ok());
    auto it = last.find(r.prefix_id);
    if (it != last.end()) {
      ++follow_ups;
      const SimRequest& prev = *it->second;
      EXPECT_GT(r.prompt_tokens, prev.prompt_tokens + prev.output_tokens);
      EXPECT_GE(r.arrival - prev.arrival, seconds(5));
    }
    last[r.prefix_id] = &r;
  }
  const double n = static_cast<double>(out.size());
  // Geometric conversations with mean 2 turns: half the requests are follow-ups (less the
  // first think time, ~5 s of 600, when none is ready).
  EXPECT_NEAR(static_cast<double>(follow_ups) / n, 0.5, 0.03);

  o.max_open_conversations = 0;  // No conversation may wait: every request starts one.
  auto none = make("mau:1M", o);
  std::set<std::uint64_t> ids;
  std::size_t count = 0;
  while (auto r = none->next()) {
    ids.insert(r->prefix_id);
    ++count;
  }
  EXPECT_EQ(ids.size(), count);
}

// ---- The MAU model -------------------------------------------------------------------------

TEST(Diurnal, RateFunction) {
  auto rate = DiurnalRate::create(100'000'000, DiurnalParams{});
  ASSERT_TRUE(rate.ok());
  const double mean = 1e8 * 0.25 * 2.5 * 4 / 86400;  // 2893.5 requests/s.
  EXPECT_DOUBLE_EQ(rate->mean_rate(), mean);
  EXPECT_DOUBLE_EQ(rate->peak_rate(), 1.6 * mean);
  EXPECT_DOUBLE_EQ(rate->trough_rate(), 0.6 * mean);
  EXPECT_DOUBLE_EQ(rate->rate_at(14), 1.6 * mean);
  EXPECT_NEAR(rate->rate_at(2), 0.6 * mean, 1e-9);
  EXPECT_NEAR(rate->rate_at(2 + 24), 0.6 * mean, 1e-9);
  EXPECT_NEAR(rate->expected_requests(5, 24), mean * 86400, 1e-3);
  // Peak hour ± 6 h: 1 + 0 - 0.1.
  EXPECT_NEAR(rate->rate_at(20), 0.9 * mean, 1e-9);
  // Numerically integrate one hour and compare with the closed form.
  double sum = 0;
  for (int i = 0; i < 36000; ++i)
    sum += rate->rate_at(9 + (i + 0.5) / 36000.0) * 0.1;
  EXPECT_NEAR(rate->expected_requests(9, 1), sum, 1e-6 * sum);

  DiurnalParams steep;
  steep.harmonic1 = 1.2;
  auto negative = DiurnalRate::create(1000, steep);
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.error().message().find("harmonics"), std::string::npos);
  DiurnalParams over;
  over.daily_active_ratio = 1.5;
  EXPECT_FALSE(DiurnalRate::create(1000, over).ok());
  EXPECT_FALSE(DiurnalRate::create(0, DiurnalParams{}).ok());
  // A strong second harmonic moves the extremes off the peak hour.
  DiurnalParams two_peaks;
  two_peaks.daily_active_ratio = 1;
  two_peaks.sessions_per_daily_active = 1;
  two_peaks.requests_per_session = 1;
  two_peaks.harmonic1 = 0.2;
  two_peaks.harmonic2 = 0.4;
  auto bimodal = DiurnalRate::create(86400, two_peaks);
  ASSERT_TRUE(bimodal.ok());
  double lo = 1e9, hi = 0;
  for (int i = 0; i < 24000; ++i) {
    lo = std::min(lo, bimodal->rate_at(i / 1000.0));
    hi = std::max(hi, bimodal->rate_at(i / 1000.0));
  }
  EXPECT_NEAR(bimodal->peak_rate(), hi, 1e-6);
  EXPECT_NEAR(bimodal->trough_rate(), lo, 1e-6);
}

TEST(MauWorkload, PeakRateFor100MMau) {
  auto w = make("mau:100M", options_with(one_tenant()));
  ASSERT_NE(w, nullptr);
  EXPECT_NEAR(w->peak_rate(), 4629.63, 0.01);
}

TEST(MauWorkload, EmpiricalRateMatchesTheRateFunction) {
  // 300K MAU from 08:00 for 3 h (rising towards the 14:00 peak): ~1e5 requests.
  auto spec = parse_workload_spec("mau:300K,hours=3,start_hour=8");
  ASSERT_TRUE(spec.ok());
  auto made = MauWorkload::create(*spec, options_with(one_tenant(), 42));
  ASSERT_TRUE(made.ok()) << made.error().to_string();
  MauWorkload& w = **made;
  const auto out = drain(w);
  // Per 30-minute window: a Poisson count with the integral of the rate as its mean.
  for (int k = 0; k < 6; ++k) {
    const double expected = w.rate().expected_requests(8 + k * 0.5, 0.5);
    std::size_t count = 0;
    for (const auto& r : out) {
      const double t = to_seconds(r.arrival);
      count += (t >= k * 1800.0 && t < (k + 1) * 1800.0);
    }
    EXPECT_NEAR(static_cast<double>(count), expected, 5 * std::sqrt(expected)) << k;
  }
  const double total = w.rate().expected_requests(8, 3);
  EXPECT_NEAR(static_cast<double>(out.size()), total, 5 * std::sqrt(total));
  // The rate rises: the last half hour has clearly more than the first.
  EXPECT_GT(w.rate().expected_requests(10.5, 0.5), 1.3 * w.rate().expected_requests(8, 0.5));
  for (std::size_t i = 1; i < out.size(); ++i)
    ASSERT_GE(out[i].arrival, out[i - 1].arrival);
  EXPECT_LT(out.back().arrival, std::chrono::hours(3));
}

TEST(MauWorkload, FullDayMatchesTheDailyMean) {
  auto spec = parse_workload_spec("mau:30K,hours=24,start_hour=0");
  auto made = MauWorkload::create(*spec, options_with(one_tenant(), 3));
  ASSERT_TRUE(made.ok());
  const auto out = drain(**made);
  const double expected = 3e4 * 0.25 * 2.5 * 4;  // 75,000 requests a day.
  EXPECT_NEAR(static_cast<double>(out.size()), expected, 5 * std::sqrt(expected));
}

TEST(MauWorkload, LengthsFollowTheConversationTrace) {
  WorkloadOptions o = options_with(one_tenant());
  o.duration = seconds(300);
  auto w = make("mau:1M", o);
  const auto out = drain(*w);
  ASSERT_GT(out.size(), 5000u);
  const LengthSampler table = LengthSampler::azure_conversation();
  double prompt = 0, output = 0, prompt2 = 0, output2 = 0;
  for (const auto& r : out) {
    prompt += r.prompt_tokens;
    output += r.output_tokens;
    prompt2 += static_cast<double>(r.prompt_tokens) * r.prompt_tokens;
    output2 += static_cast<double>(r.output_tokens) * r.output_tokens;
  }
  const double n = static_cast<double>(out.size());
  const double sd_p = std::sqrt(prompt2 / n - (prompt / n) * (prompt / n));
  const double sd_o = std::sqrt(output2 / n - (output / n) * (output / n));
  EXPECT_NEAR(prompt / n, table.mean_prompt(), 5 * sd_p / std::sqrt(n));
  EXPECT_NEAR(output / n, table.mean_output(), 5 * sd_o / std::sqrt(n));

  // The built-in table is the conversation trace's distribution.
  const std::string path = testing::shared_path("traces/AzureLLMInferenceTrace_conv.csv");
  SPW_REQUIRE_SHARED_FILE(path);
  auto trace = load_request_trace(path);
  ASSERT_TRUE(trace.ok());
  auto empirical = LengthSampler::from_trace(*trace);
  ASSERT_TRUE(empirical.ok());
  EXPECT_NEAR(table.mean_prompt(), empirical->mean_prompt(), 0.01 * empirical->mean_prompt());
  EXPECT_NEAR(table.mean_output(), empirical->mean_output(), 0.01 * empirical->mean_output());
}

TEST(MauWorkload, LengthsFromAFile) {
  const auto path = write_file("lengths", azure_csv({0, 1}));  // Rows (100, 10), (101, 11).
  WorkloadOptions o = options_with(one_tenant());
  o.duration = seconds(10);
  auto w = make("mau:1M,lengths=" + path + ",length=2", o);
  ASSERT_NE(w, nullptr);
  const auto out = drain(*w);
  ASSERT_GT(out.size(), 100u);
  for (const auto& r : out) {
    EXPECT_TRUE((r.prompt_tokens == 200 && r.output_tokens == 20) ||
                (r.prompt_tokens == 202 && r.output_tokens == 22));
  }
  auto missing = make_workload(*parse_workload_spec("mau:1M,lengths=/nonexistent.csv"), o);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
}

TEST(MauWorkload, Determinism) {
  WorkloadOptions o = options_with(one_tenant(), 5);
  o.duration = seconds(60);
  const auto a = drain(*make("mau:1M", o));
  const auto b = drain(*make("mau:1M", o));
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i)
    ASSERT_TRUE(same(a[i], b[i])) << i;
  o.seed = 6;
  const auto c = drain(*make("mau:1M", o));
  std::size_t differ = 0;
  for (std::size_t i = 0; i < std::min(a.size(), c.size()); ++i)
    differ += a[i].arrival != c[i].arrival;
  EXPECT_GT(differ, a.size() / 2);
}

TEST(MauWorkload, LimitsAreEnforced) {
  WorkloadOptions o = options_with(one_tenant());
  o.max_mau = 1000;
  auto too_big = make_workload(*parse_workload_spec("mau:1M"), o);
  ASSERT_FALSE(too_big.ok());
  EXPECT_NE(too_big.error().message().find("mau"), std::string::npos);
  o = options_with(one_tenant());
  o.max_hours = 2;
  auto too_long = make_workload(*parse_workload_spec("mau:1M,hours=3"), o);
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.error().message().find("hours"), std::string::npos);
}

}  // namespace
}  // namespace spillway::sim
