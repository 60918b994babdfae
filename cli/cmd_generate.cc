// spillway generate: one prompt in, its continuation out (stdout); diagnostics on stderr.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "core/log.h"

#include "engine/generator.h"
#include "engine/model.h"

#include "cli/commands.h"

namespace spillway::cli {
namespace {

struct GenerateFlags {
  std::string model;
  std::string tokenizer;
  std::string prompt;
  engine::GenerateRequest request;
  std::int32_t threads = 0;
  std::int32_t context = 0;
  bool seed_given = false;
  bool raw = false;
  std::string kv_type = "f16";
};

int run_generate(const GenerateFlags& f) {
  auto model = engine::Model::load({f.model, f.tokenizer});
  if (!model.ok()) {
    std::fprintf(stderr, "spillway generate: %s\n", model.error().message().c_str());
    return 1;
  }
  for (const std::string& w : (*model)->vocab().warnings)
    log_warn("tokenizer", {kv("warning", w)});
  engine::GeneratorOptions options;
  options.threads =
      f.threads > 0 ? f.threads
                    : static_cast<std::int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  options.context = f.context;
  auto kv_type = engine::parse_kv_type(f.kv_type);
  if (!kv_type.ok()) {
    std::fprintf(stderr, "spillway generate: %s\n", kv_type.error().message().c_str());
    return 2;
  }
  options.kv_type = *kv_type;
  auto generator = engine::Generator::create(**model, options);
  if (!generator.ok()) {
    std::fprintf(stderr, "spillway generate: %s\n", generator.error().message().c_str());
    return 1;
  }
  engine::GenerateRequest request = f.request;
  request.prompt = f.prompt;
  if (!f.seed_given) {
    request.sampling.seed =
        static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  }
  const auto start = std::chrono::steady_clock::now();
  auto first_token = start;
  bool got_first = false;
  auto result = (*generator)->generate(request, [&](std::string_view text) {
    if (!got_first) {
      got_first = true;
      first_token = std::chrono::steady_clock::now();
    }
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
  if (!result.ok()) {
    std::fprintf(stderr, "spillway generate: %s\n", result.error().message().c_str());
    return result.error().code() == ErrorCode::kInvalidArgument ||
                   result.error().code() == ErrorCode::kOutOfRange
               ? 2
               : 1;
  }
  if (!f.raw) std::fputc('\n', stdout);
  std::fflush(stdout);
  const auto end = std::chrono::steady_clock::now();
  const double total_s = std::chrono::duration<double>(end - start).count();
  const auto n_gen = result->tokens.size();
  log_info("generate finished",
           {kv("prompt_tokens", result->prompt_tokens.size()), kv("generated_tokens", n_gen),
            kv("finish", engine::finish_reason_name(result->finish)),
            kv("seconds", fmt::format("{:.3f}", total_s)),
            kv("tokens_per_second", fmt::format("{:.1f}", n_gen / std::max(total_s, 1e-9))),
            kv("seed", request.sampling.seed)});
  return 0;
}

}  // namespace

Command add_generate_command(CLI::App& root) {
  auto f = std::make_shared<GenerateFlags>();
  f->request.sampling.temperature = 0.8f;
  f->request.sampling.top_k = 40;
  f->request.sampling.top_p = 0.95f;
  CLI::App* app = root.add_subcommand(
      "generate", "Generate a continuation of a prompt with a GGUF or llama2.c model");
  app->add_option("-m,--model", f->model, "Model file (.gguf, or llama2.c .bin with --tokenizer)")
      ->required();
  app->add_option("--tokenizer", f->tokenizer, "llama2.c tokenizer file (llama2.c models only)");
  app->add_option("-p,--prompt", f->prompt, "Prompt text (may be empty)")->required();
  app->add_option("-n,--max-tokens", f->request.max_tokens, "Most tokens to generate")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 24));
  app->add_option("-t,--temperature", f->request.sampling.temperature, "0 = greedy")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 100.0));
  app->add_option("--top-k", f->request.sampling.top_k, "Keep the K most likely tokens (0 = off)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app->add_option("--top-p", f->request.sampling.top_p, "Nucleus sampling mass (1 = off)")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app->add_option("--min-p", f->request.sampling.min_p, "Drop tokens below min-p x the top one")
      ->capture_default_str()
      ->check(CLI::Range(0.0, 1.0));
  app->add_option("--repeat-penalty", f->request.sampling.repetition_penalty,
                  "Repetition penalty (1 = off)")
      ->capture_default_str();
  app->add_option("--presence-penalty", f->request.sampling.presence_penalty)
      ->capture_default_str();
  app->add_option("--frequency-penalty", f->request.sampling.frequency_penalty)
      ->capture_default_str();
  app->add_option_function<std::uint64_t>(
      "-s,--seed",
      [f](std::uint64_t s) {
        f->request.sampling.seed = s;
        f->seed_given = true;
      },
      "Random seed (default: from the clock; printed on stderr)");
  app->add_option("--stop", f->request.stop, "Stop string (repeatable)");
  app->add_option("--threads", f->threads, "Threads (default: all cores)")
      ->check(CLI::Range(1, 512));
  app->add_option("-c,--ctx-size", f->context, "Context length (default: the model's)")
      ->check(CLI::NonNegativeNumber);
  app->add_option("--kv-type", f->kv_type,
                  "KV cache element type: f16, f32 or q8_0 (head_dim a multiple of 32)")
      ->capture_default_str();
  app->add_flag("--raw", f->raw, "Do not print a newline after the generated text");
  return {app, [f] { return run_generate(*f); }};
}

}  // namespace spillway::cli
