// PerfModel: roofline step times computed by hand on a made-up GPU and model, KV-cache sizing,
// the built-in profiles, GGUF metadata and the TOML profile format.
#include "sim/perf_model.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "engine/mkmodel.h"

#include "test_support.h"

namespace spillway::sim {
namespace {

StepShape shape(std::int64_t prefill, std::int64_t decode, std::int64_t attended, std::int64_t kv) {
  StepShape s;
  s.prefill_tokens = prefill;
  s.decode_tokens = decode;
  s.attended_positions = attended;
  s.kv_positions = kv;
  return s;
}

// A made-up device with round numbers: 1e9 FLOP/s and 1e8 B/s at 50% efficiency.
GpuProfile toy_gpu() {
  GpuProfile g;
  g.name = "toy";
  g.peak_flops = 1e9;
  g.flops_efficiency = 0.5;  // 5e8 FLOP/s achieved.
  g.memory_bandwidth = 1e8;
  g.bandwidth_efficiency = 0.5;  // 5e7 B/s achieved.
  g.memory_bytes = 1e6;
  g.link_bandwidth = 1e9;
  g.link_latency = Nanos{5000};
  g.step_overhead = Nanos{1000};
  return g;
}

// 2 layers, width 8, FF 16, 2 heads of 4, 1 KV head, 10 tokens of vocabulary.
// Per layer: wq 8*8 + wk,wv 2*8*4 + wo 8*8 + FFN 3*8*16 + norms 2*8 = 592.
// params = 2*592 + embeddings 2*10*8 + output norm 8 = 1352; weights 2704 bytes (2 per param).
// KV per token: 2 (K,V) * 2 layers * 1 head * 4 dims * 2 bytes = 32.
ModelProfile toy_model() {
  ModelProfile m;
  m.name = "toy";
  m.n_layer = 2;
  m.n_embd = 8;
  m.n_ff = 16;
  m.n_head = 2;
  m.n_head_kv = 1;
  m.n_vocab = 10;
  m.n_ctx = 64;
  return m;
}

TEST(PerfModel, ToyModelSizes) {
  const ModelProfile m = toy_model();
  ASSERT_TRUE(m.validate().ok());
  EXPECT_DOUBLE_EQ(m.params(), 1352);
  EXPECT_DOUBLE_EQ(m.weight_bytes(), 2704);
  EXPECT_DOUBLE_EQ(m.kv_bytes_per_token(), 32);
}

TEST(PerfModel, ComputeBoundPrefill) {
  GpuProfile g = toy_gpu();
  g.memory_bandwidth = 1e10;  // 5e9 B/s: memory is not the limit.
  const PerfModel perf(g, toy_model(), 1);
  // 4 prompt tokens from position 0: they attend 1+2+3+4 = 10 positions; 4 KV positions read.
  // flops = 2*1352*4 + 4*2 layers*8*10 = 10816 + 640 = 11456 -> 11456 / 5e8 s = 22912 ns.
  // bytes = 2704 + 32*4 = 2832 -> 566.4 ns. Step = 1000 + 22912.
  EXPECT_EQ(perf.step_time(shape(4, 0, 10, 4)), Nanos{23912});
}

TEST(PerfModel, BandwidthBoundDecode) {
  const PerfModel perf(toy_gpu(), toy_model(), 1);
  // One sequence decoding at context 10: flops = 2704 + 640 = 3344 -> 6688 ns;
  // bytes = 2704 + 32*10 = 3024 -> 3024 / 5e7 s = 60480 ns. Step = 1000 + 60480.
  EXPECT_EQ(perf.step_time(shape(0, 1, 10, 10)), Nanos{61480});
  // kv_positions 0 reads the attended positions: same shape, same time.
  EXPECT_EQ(perf.step_time(shape(0, 1, 10, 0)), Nanos{61480});
  // A chunk reads its sequence's KV once: prefill 4 (attended 10) reads 4 positions, not 10.
  // bytes = 2704 + 128 = 2832 -> 56640 ns; flops 11456 -> 22912 ns. Step = 1000 + 56640.
  EXPECT_EQ(perf.step_time(shape(4, 0, 10, 4)), Nanos{57640});
  EXPECT_EQ(perf.step_time(shape(4, 0, 10, 0)), Nanos{1000 + 60480});
}

TEST(PerfModel, TensorParallelAllReduces) {
  const PerfModel perf(toy_gpu(), toy_model(), 2);
  // Two sequences decoding, contexts summing to 20, on 2 devices.
  // flops = 2*1352*2 + 4*2*8*20 = 5408 + 1280 = 6688 / (2 * 5e8) -> 6688 ns.
  // bytes = 2704 + 32*20 = 3344 / (2 * 5e7) -> 33440 ns (memory-bound).
  // One all-reduce of 2 tokens * 8 * 2 bytes = 32 bytes: 5000 ns + 2*(1/2)*32 / 1e9 s = 5032 ns;
  // 2 per layer * 2 layers = 20128 ns. Step = 1000 + 33440 + 20128.
  EXPECT_EQ(perf.step_time(shape(0, 2, 20, 20)), Nanos{54568});
  // No communication term with one device.
  const PerfModel single(toy_gpu(), toy_model(), 1);
  EXPECT_EQ(single.step_time(shape(0, 2, 20, 20)), Nanos{1000 + 66880});
}

TEST(PerfModel, SeparateAttentionAndKvRates) {
  GpuProfile g = toy_gpu();
  g.memory_bandwidth = 1e10;
  g.attention_efficiency = 0.25;  // Attention at 2.5e8 FLOP/s, matrices at 5e8.
  // Prefill 4 from 0: matrices 10816 / 5e8 = 21632 ns + attention 640 / 2.5e8 = 2560 ns.
  EXPECT_EQ(PerfModel(g, toy_model(), 1).step_time(shape(4, 0, 10, 4)), Nanos{1000 + 24192});
  GpuProfile k = toy_gpu();
  k.kv_bandwidth_efficiency = 0.25;  // KV reads at 2.5e7 B/s, weights at 5e7.
  // Decode at context 10: weights 2704 / 5e7 = 54080 ns + KV 320 / 2.5e7 = 12800 ns.
  EXPECT_EQ(PerfModel(k, toy_model(), 1).step_time(shape(0, 1, 10, 10)), Nanos{1000 + 66880});
  k.kv_bandwidth_efficiency = 1.5;
  EXPECT_NE(k.validate().error().message().find("kv_bandwidth_efficiency"), std::string::npos);
}

TEST(PerfModel, IdleWakeAddsToTheFirstStepAfterIdleOnly) {
  GpuProfile g = toy_gpu();
  g.idle_wake = Nanos{7000};
  const PerfModel perf(g, toy_model(), 1);
  // The bandwidth-bound decode above: 1000 + 60480 ns; after idle 7000 ns more.
  StepShape s = shape(0, 1, 10, 10);
  EXPECT_EQ(perf.step_time(s), Nanos{61480});
  s.after_idle = true;
  EXPECT_EQ(perf.step_time(s), Nanos{68480});
  // An empty step stays empty, idle or not.
  StepShape empty;
  empty.after_idle = true;
  EXPECT_EQ(perf.step_time(empty), Nanos{0});
  // A profile without the term (every datacenter profile) ignores the flag.
  EXPECT_EQ(PerfModel(toy_gpu(), toy_model(), 1).step_time(s), Nanos{61480});
  g.idle_wake = Nanos{-1};
  EXPECT_NE(g.validate().error().message().find("idle_wake"), std::string::npos);
}

TEST(PerfModel, EmptyStepTakesNoTime) {
  const PerfModel perf(toy_gpu(), toy_model(), 1);
  EXPECT_EQ(perf.step_time({}), Nanos{0});
}

TEST(PerfModel, KvCacheBlocks) {
  // 1e6 bytes * 0.5 - 2704 bytes of weights = 497296 bytes / (32 * 16 bytes a block) = 971.3.
  EXPECT_EQ(PerfModel(toy_gpu(), toy_model(), 1).kv_cache_blocks(16, 0.5), 971);
  // Two devices: 2e6 * 0.5 - 2704 = 997296 / 512 = 1947.8.
  EXPECT_EQ(PerfModel(toy_gpu(), toy_model(), 2).kv_cache_blocks(16, 0.5), 1947);
  // Weights that do not fit leave no cache.
  GpuProfile small = toy_gpu();
  small.memory_bytes = 2000;
  EXPECT_EQ(PerfModel(small, toy_model(), 1).kv_cache_blocks(16), 0);
}

TEST(PerfModel, BuiltinModelShapes) {
  // Published parameter counts: Llama-3-8B 8.03B, Llama-3-70B 70.6B, Llama-2-7B 6.74B,
  // TinyLlama-1.1B 1.10B.
  const std::pair<const char*, double> expected[] = {{"llama-3-8b", 8.03e9},
                                                     {"Llama-3-70B", 70.6e9},
                                                     {"llama-2-7b", 6.74e9},
                                                     {"tinyllama-1.1b", 1.10e9}};
  for (const auto& [name, params] : expected) {
    auto m = builtin_model_profile(name);
    ASSERT_TRUE(m.ok()) << name;
    ASSERT_TRUE(m->validate().ok()) << name;
    EXPECT_NEAR(m->params() / params, 1.0, 0.01) << name;
  }
  // Llama-3-8B: 32 layers * 8 KV heads * 128 dims * 2 (K, V) * 2 bytes.
  EXPECT_DOUBLE_EQ(builtin_model_profile("llama-3-8b")->kv_bytes_per_token(), 131072);
  EXPECT_EQ(builtin_model_profile_names().size(), 5u);
  auto bad = builtin_model_profile("gpt-5");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("llama-3-8b"), std::string::npos);
}

TEST(PerfModel, BuiltinGpuProfiles) {
  for (const std::string& name : builtin_gpu_profile_names()) {
    auto g = builtin_gpu_profile(name);
    ASSERT_TRUE(g.ok()) << name;
    EXPECT_TRUE(g->validate().ok()) << name;
    EXPECT_FALSE(g->source.empty()) << name;
  }
  EXPECT_EQ(builtin_gpu_profile("h100")->memory_bandwidth, 3.35e12);
  EXPECT_EQ(builtin_gpu_profile("H200")->memory_bytes, 141e9);
  EXPECT_TRUE(builtin_gpu_profile("cpu-local").ok());
  EXPECT_FALSE(builtin_gpu_profile("tpu-v5").ok());
  // Llama-3-8B decoding one sequence on an H100 reads its 16 GB of weights per token:
  // 16.06e9 B / (3.35e12 * 0.8) = 5.99 ms plus the 1 ms step overhead.
  const PerfModel perf(*builtin_gpu_profile("H100"), *builtin_model_profile("llama-3-8b"), 1);
  const Nanos t = perf.step_time(shape(0, 1, 1, 1));
  EXPECT_NEAR(to_seconds(t), 1e-3 + 16.06e9 / (3.35e12 * 0.8), 1e-4);
  // Its KV cache on one H100: 0.9 * 80 GB - 16.06 GB over 2 MiB blocks of 16 tokens.
  EXPECT_NEAR(perf.kv_cache_blocks(16), (0.9 * 80e9 - 16.06e9) / (131072.0 * 16), 30);
}

TEST(PerfModel, Validation) {
  GpuProfile g = toy_gpu();
  g.flops_efficiency = 1.5;
  EXPECT_NE(g.validate().error().message().find("flops_efficiency"), std::string::npos);
  g = toy_gpu();
  g.memory_bandwidth = 0;
  EXPECT_NE(g.validate().error().message().find("memory_bandwidth"), std::string::npos);
  g = toy_gpu();
  g.step_overhead = Nanos{-1};
  EXPECT_NE(g.validate().error().message().find("step_overhead"), std::string::npos);
  ModelProfile m = toy_model();
  m.n_head_kv = 3;
  EXPECT_NE(m.validate().error().message().find("n_head_kv"), std::string::npos);
  m = toy_model();
  m.n_layer = 0;
  EXPECT_NE(m.validate().error().message().find("n_layer"), std::string::npos);
}

TEST(PerfModel, ProfileTomlRoundTrip) {
  const auto dir = testing::temp_dir("perf_model_roundtrip");
  GpuProfile g = toy_gpu();
  g.name = "odd \"name\" \\ here";
  g.peak_flops = 1.2345678901234e13;
  g.step_overhead = Nanos{123456789};
  g.link_latency = Nanos{1};
  g.source = "line one\nline two";
  g.attention_efficiency = 0.03125;
  g.kv_bandwidth_efficiency = 4.5e-10;
  g.idle_wake = Nanos{151739};
  const std::string path = (dir / "p.toml").string();
  ASSERT_TRUE(write_gpu_profile(g, path).ok());
  auto back = load_gpu_profile(path);
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->name, g.name);
  EXPECT_EQ(back->peak_flops, g.peak_flops);
  EXPECT_EQ(back->memory_bandwidth, g.memory_bandwidth);
  EXPECT_EQ(back->memory_bytes, g.memory_bytes);
  EXPECT_EQ(back->link_bandwidth, g.link_bandwidth);
  EXPECT_EQ(back->link_latency, g.link_latency);
  EXPECT_EQ(back->flops_efficiency, g.flops_efficiency);
  EXPECT_EQ(back->bandwidth_efficiency, g.bandwidth_efficiency);
  EXPECT_EQ(back->attention_efficiency, g.attention_efficiency);
  EXPECT_EQ(back->kv_bandwidth_efficiency, g.kv_bandwidth_efficiency);
  EXPECT_EQ(back->step_overhead, g.step_overhead);
  EXPECT_EQ(back->idle_wake, g.idle_wake);
  EXPECT_EQ(back->source, g.source);
}

TEST(PerfModel, ProfileTomlErrorsNameFileLineAndKey) {
  const std::string good =
      "[profile]\nname = \"x\"\npeak_flops = 1e12\nmemory_bandwidth = 1e11\n"
      "memory_bytes = 8e9\nlink_bandwidth = 1e10\nlink_latency_us = 5\n"
      "flops_efficiency = 0.5\nbandwidth_efficiency = 0.8\nstep_overhead_us = 100\n";
  auto ok = parse_gpu_profile(good, "p.toml");
  ASSERT_TRUE(ok.ok()) << ok.error().message();
  EXPECT_EQ(ok->step_overhead, Nanos{100000});
  EXPECT_EQ(ok->link_latency, Nanos{5000});
  EXPECT_EQ(ok->attention_efficiency, 0);  // Optional: the matrices' efficiency.
  EXPECT_EQ(ok->effective_attention_efficiency(), 0.5);
  EXPECT_EQ(ok->idle_wake, Nanos{0});  // Optional: no idle wake-up term.
  auto waking = parse_gpu_profile(good + "idle_wake_us = 150.5\n", "p.toml");
  ASSERT_TRUE(waking.ok()) << waking.error().message();
  EXPECT_EQ(waking->idle_wake, Nanos{150500});

  auto expect_error = [&](const std::string& text, const std::string& needle) {
    auto r = parse_gpu_profile(text, "p.toml");
    ASSERT_FALSE(r.ok()) << text;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message().find(needle), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find("p.toml:"), std::string::npos) << r.error().message();
  };
  std::string t = good;
  t.replace(t.find("flops_efficiency = 0.5"), 22, "flops_efficiency = 1.5");
  expect_error(t, "p.toml:8:");
  expect_error(t, "profile.flops_efficiency");
  t = good;
  t.replace(t.find("peak_flops = 1e12"), 17, "peak_flops = 0");
  expect_error(t, "profile.peak_flops");
  t = good;
  t.replace(t.find("memory_bytes = 8e9"), 18, "memory_bytes = \"8\"");
  expect_error(t, "profile.memory_bytes");
  expect_error(good + "bogus = 1\n", "profile.bogus");
  expect_error(good + "idle_wake_us = -1\n", "profile.idle_wake_us");
  expect_error("[profile]\nname = \"x\"\n", "peak_flops");
  expect_error("name = \"x\"\n", "p.toml:1:");
  expect_error("[profile\n", "p.toml:");

  auto missing = load_gpu_profile("/nonexistent/dir/p.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("/nonexistent/dir/p.toml"), std::string::npos);
}

TEST(PerfModel, GgufMetadataOfStories260K) {
  const std::string path = testing::shared_path("models/stories260K.gguf");
  SPW_REQUIRE_SHARED_FILE(path);
  auto m = model_profile_from_gguf(path);
  ASSERT_TRUE(m.ok()) << m.error().message();
  auto builtin = builtin_model_profile("stories260k");
  ASSERT_TRUE(builtin.ok());
  EXPECT_EQ(m->n_layer, builtin->n_layer);
  EXPECT_EQ(m->n_embd, builtin->n_embd);
  EXPECT_EQ(m->n_ff, builtin->n_ff);
  EXPECT_EQ(m->n_head, builtin->n_head);
  EXPECT_EQ(m->n_head_kv, builtin->n_head_kv);
  EXPECT_EQ(m->n_vocab, builtin->n_vocab);
  EXPECT_EQ(m->n_ctx, builtin->n_ctx);
  EXPECT_DOUBLE_EQ(m->weight_bytes_per_param, builtin->weight_bytes_per_param);  // F32.
}

TEST(PerfModel, GgufWeightBytesFollowTensorTypes) {
  const auto dir = testing::temp_dir("perf_model_gguf");
  engine::MkModelOptions o;
  o.shape = *engine::named_model_shape("tiny");
  o.type = engine::GgmlType::kQ8_0;
  o.out_path = (dir / "tiny-q8.gguf").string();
  ASSERT_TRUE(engine::write_random_model(o).ok());
  auto m = model_profile_from_gguf(o.out_path);
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_EQ(m->n_embd, 256);
  EXPECT_EQ(m->n_layer, 2);
  EXPECT_EQ(m->n_head_kv, 2);
  // Q8_0 stores 32 weights in 34 bytes.
  EXPECT_DOUBLE_EQ(m->weight_bytes_per_param, 34.0 / 32.0);

  // Not a GGUF file: an error naming the path, never a crash.
  const std::string junk = (dir / "junk.gguf").string();
  std::ofstream(junk) << "GGUF but not really";
  auto bad = model_profile_from_gguf(junk);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find(junk), std::string::npos);
}

}  // namespace
}  // namespace spillway::sim
