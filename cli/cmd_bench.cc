// spillway bench: engine throughput against the machine's memory bandwidth.
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "core/log.h"
#include "core/request_trace.h"

#include "engine/bench.h"
#include "engine/model.h"
#include "engine/trace_bench.h"

#include "cli/commands.h"

namespace spillway::cli {
namespace {

struct BenchFlags {
  std::string model;
  std::string tokenizer;
  engine::BenchOptions options;
  std::string concurrency = "1,4,8,16";
  std::string kv_type = "f16";
  bool json = false;
  // Trace replay (--trace).
  std::string trace;
  engine::TraceBenchOptions replay;
};

Result<std::vector<std::int32_t>> parse_list(const std::string& text) {
  std::vector<std::int32_t> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    try {
      std::size_t used = 0;
      const int v = std::stoi(item, &used);
      if (used != item.size() || v < 1) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (const std::exception&) {
      return make_error(ErrorCode::kInvalidArgument,
                        "--concurrency: '{}' is not a positive integer (expected e.g. 1,4,8,16)",
                        item);
    }
  }
  if (out.empty()) return Error(ErrorCode::kInvalidArgument, "--concurrency is empty");
  return out;
}

int run_bench(BenchFlags& f) {
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "spillway bench: %s\n", e.message().c_str());
    return e.code() == ErrorCode::kInvalidArgument ? 2 : 1;
  };
  auto conc = parse_list(f.concurrency);
  if (!conc.ok()) return fail(conc.error());
  f.options.concurrency = *conc;
  auto kv_type = engine::parse_kv_type(f.kv_type);
  if (!kv_type.ok()) return fail(kv_type.error());
  f.options.kv_type = *kv_type;
  if (f.options.threads == 0) {
    f.options.threads =
        static_cast<std::int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  }
  auto model = engine::Model::load({f.model, f.tokenizer});
  if (!model.ok()) return fail(model.error());
  if (!f.trace.empty()) {
    auto trace = load_request_trace(f.trace);
    if (!trace.ok()) return fail(trace.error());
    f.replay.serving.threads = f.options.threads;
    f.replay.serving.kv_type = f.options.kv_type;
    log_info("replaying trace",
             {kv("model", f.model), kv("trace", f.trace), kv("rows", trace->requests.size()),
              kv("rate", f.replay.rate), kv("duration_s", f.replay.duration_s),
              kv("length_scale", f.replay.length_scale), kv("threads", f.options.threads)});
    auto report = engine::run_trace_benchmark(**model, *trace, f.replay);
    if (!report.ok()) return fail(report.error());
    const std::string out = f.json ? report->to_json() + "\n" : report->to_text();
    std::fputs(out.c_str(), stdout);
    return 0;
  }
  log_info("benchmarking",
           {kv("model", f.model), kv("threads", f.options.threads),
            kv("prompt_tokens", f.options.prompt_tokens), kv("gen_tokens", f.options.gen_tokens),
            kv("repetitions", f.options.repetitions)});
  auto report = engine::run_benchmark(**model, f.options);
  if (!report.ok()) return fail(report.error());
  const std::string out = f.json ? report->to_json() + "\n" : report->to_text();
  std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace

Command add_bench_command(CLI::App& root) {
  auto f = std::make_shared<BenchFlags>();
  CLI::App* app = root.add_subcommand(
      "bench",
      "Measure prompt, decode and batched-decode throughput against memory bandwidth, or replay a "
      "request trace against the serving core (--trace)");
  app->add_option("-m,--model", f->model, "Model file")->required();
  app->add_option("--tokenizer", f->tokenizer, "llama2.c tokenizer file (llama2.c models only)");
  app->add_option("--threads", f->options.threads, "Threads (default: all cores)")
      ->check(CLI::Range(1, 512));
  app->add_option("--prompt-tokens", f->options.prompt_tokens)
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app->add_option("--gen-tokens", f->options.gen_tokens)
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app->add_option("--concurrency", f->concurrency, "Comma-separated sequence counts")
      ->capture_default_str();
  app->add_option("--repetitions", f->options.repetitions, "Median of R runs")
      ->capture_default_str()
      ->check(CLI::Range(1, 1000));
  app->add_option("--kv-type", f->kv_type,
                  "KV cache element type: f16, f32 or q8_0 (head_dim a multiple of 32)")
      ->capture_default_str();
  app->add_flag("--json", f->json, "Print one JSON object");

  // Trace replay against the serving core.
  app->add_option("--trace", f->trace,
                  "Replay a request trace CSV (Azure LLM inference trace or a length "
                  "distribution) against the serving core instead");
  app->add_option("--rate", f->replay.rate,
                  "Trace: mean arrival rate in requests/s (0 = the trace's own timestamps)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1e6));
  app->add_option("--duration", f->replay.duration_s, "Trace: replay the first S seconds")
      ->capture_default_str()
      ->check(CLI::Range(1e-3, 1e7));
  app->add_option("--length-scale", f->replay.length_scale,
                  "Trace: multiply prompt and output lengths (so a CPU keeps up)")
      ->capture_default_str()
      ->check(CLI::Range(1e-6, 1e3));
  app->add_option("--shared-prefix", f->replay.shared_prefix_tokens,
                  "Trace: tokens of common prompt prefix (a shared system prompt)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 20));
  app->add_option("--max-requests", f->replay.max_requests)
      ->capture_default_str()
      ->check(CLI::Range(1, 10000000));
  app->add_option("--kv-cache-mib", f->replay.serving.kv_cache_mib, "Trace: KV cache size")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app->add_option("--kv-cache-tokens", f->replay.serving.kv_cache_tokens,
                  "Trace: KV cache size in tokens instead (0: use --kv-cache-mib)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 30));
  app->add_option("--block-tokens", f->replay.serving.block_tokens,
                  "Trace: positions per KV-cache block")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app->add_option("--max-batch-tokens", f->replay.serving.max_batch_tokens,
                  "Trace: tokens per engine step")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  app->add_option("--max-running", f->replay.serving.max_running,
                  "Trace: sequences batched together")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app->add_option("--max-waiting", f->replay.serving.max_waiting, "Trace: waiting-queue bound")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app->add_option("--seed", f->replay.seed, "Trace: prompt token seed")->capture_default_str();
  return {app, [f] { return run_bench(*f); }};
}

}  // namespace spillway::cli
