#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "engine/stop_strings.h"

namespace spillway::engine {
namespace {

std::vector<float> logits_of(std::initializer_list<float> v) {
  return v;
}

SamplingParams params(float temperature, std::uint64_t seed = 1) {
  SamplingParams p;
  p.temperature = temperature;
  p.seed = seed;
  return p;
}

TEST(Sampler, GreedyPicksArgmaxLowestIdOnTies) {
  Sampler s(params(0), 4);
  auto l = logits_of({1, 3, 3, 2});
  EXPECT_EQ(s.sample(l).token, 1);
}

TEST(Sampler, LogprobsAreOfRawDistribution) {
  SamplingParams p = params(0);
  p.top_logprobs = 2;
  Sampler s(p, 3);
  auto l = logits_of({0, std::log(3.0f), 0});  // Probabilities 0.2, 0.6, 0.2.
  SampledToken t = s.sample(l);
  EXPECT_EQ(t.token, 1);
  EXPECT_NEAR(t.logprob, std::log(0.6), 1e-5);
  ASSERT_EQ(t.top.size(), 2u);
  EXPECT_EQ(t.top[0].token, 1);
  EXPECT_EQ(t.top[1].token, 0);
  EXPECT_NEAR(t.top[1].logprob, std::log(0.2), 1e-5);
}

TEST(Sampler, SameSeedSameSequence) {
  auto run = [](std::uint64_t seed) {
    Sampler s(params(1.0f, seed), 8);
    std::vector<std::int32_t> out;
    for (int i = 0; i < 50; ++i) {
      auto l = logits_of({0, 0, 0, 0, 0, 0, 0, 0});
      out.push_back(s.sample(l).token);
    }
    return out;
  };
  EXPECT_EQ(run(5), run(5));
  EXPECT_NE(run(5), run(6));
}

TEST(Sampler, FrequenciesFollowTemperedDistribution) {
  Sampler s(params(1.0f, 9), 3);
  std::map<int, int> counts;
  constexpr int kN = 20000;
  for (int i = 0; i < kN; ++i) {
    auto l = logits_of({0, std::log(2.0f), std::log(7.0f)});  // 0.1, 0.2, 0.7
    ++counts[s.sample(l).token];
  }
  EXPECT_NEAR(counts[0] / double(kN), 0.1, 0.02);
  EXPECT_NEAR(counts[1] / double(kN), 0.2, 0.02);
  EXPECT_NEAR(counts[2] / double(kN), 0.7, 0.02);
}

TEST(Sampler, TopKTopPAndMinPRestrictCandidates) {
  auto sample_many = [](SamplingParams p) {
    Sampler s(p, 4);
    std::map<int, int> counts;
    for (int i = 0; i < 2000; ++i) {
      auto l = logits_of({std::log(0.4f), std::log(0.3f), std::log(0.2f), std::log(0.1f)});
      ++counts[s.sample(l).token];
    }
    return counts;
  };
  SamplingParams k = params(1.0f);
  k.top_k = 2;
  auto ck = sample_many(k);
  EXPECT_EQ(ck.count(2) + ck.count(3), 0u);
  EXPECT_GT(ck[1], 0);

  SamplingParams p = params(1.0f);
  p.top_p = 0.65f;  // 0.4 + 0.3 reaches it.
  auto cp = sample_many(p);
  EXPECT_EQ(cp.count(2) + cp.count(3), 0u);
  EXPECT_GT(cp[1], 0);

  SamplingParams m = params(1.0f);
  m.min_p = 0.6f;  // Keeps tokens with p >= 0.24.
  auto cm = sample_many(m);
  EXPECT_EQ(cm.count(2) + cm.count(3), 0u);
  EXPECT_GT(cm[0], 0);
  EXPECT_GT(cm[1], 0);
}

TEST(Sampler, PenaltiesDiscourageRepeats) {
  SamplingParams p = params(0);
  p.frequency_penalty = 1.5f;
  Sampler s(p, 3);
  auto l1 = logits_of({2.0f, 1.0f, 0.0f});
  EXPECT_EQ(s.sample(l1).token, 0);
  auto l2 = logits_of({2.0f, 1.0f, 0.0f});  // Token 0 now at 0.5 < 1.0.
  EXPECT_EQ(s.sample(l2).token, 1);

  SamplingParams r = params(0);
  r.repetition_penalty = 4.0f;
  Sampler rep(r, 3);
  const std::int32_t prompt[] = {0};
  rep.add_prompt(prompt);
  auto l3 = logits_of({2.0f, 1.0f, 0.0f});  // 2 / 4 = 0.5 < 1.
  EXPECT_EQ(rep.sample(l3).token, 1);
}

TEST(Sampler, ValidationNamesTheParameter) {
  SamplingParams p;
  p.top_p = 0;
  Status s = validate_sampling_params(p);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("top_p"), std::string::npos);
  p = {};
  p.temperature = std::nanf("");
  EXPECT_FALSE(validate_sampling_params(p).ok());
  p = {};
  p.top_logprobs = 21;
  EXPECT_FALSE(validate_sampling_params(p).ok());
  EXPECT_TRUE(validate_sampling_params(SamplingParams{}).ok());
}

TEST(StopMatcher, HoldsBackPartialMatchesAndCutsAtStop) {
  StopMatcher m({"END", "\n\n"});
  EXPECT_EQ(m.push("hello E"), "hello ");
  EXPECT_EQ(m.push("N"), "");
  EXPECT_EQ(m.push("ding"), "ENding");
  EXPECT_EQ(m.push(" world\n"), " world");
  EXPECT_EQ(m.push("\nmore"), "");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(m.push("x"), "");
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, FlushReleasesHeldText) {
  StopMatcher m({"STOP"});
  EXPECT_EQ(m.push("abcST"), "abc");
  EXPECT_EQ(m.flush(), "ST");
  StopMatcher none({});
  EXPECT_EQ(none.push("anything"), "anything");
}

TEST(StopMatcher, EarliestStopWins) {
  StopMatcher m({"cd", "b"});
  EXPECT_EQ(m.push("abcd"), "a");
}

}  // namespace
}  // namespace spillway::engine
