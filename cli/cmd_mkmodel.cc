// spillway mkmodel: write a random-weight Llama GGUF of a realistic shape (for benchmarks).
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "core/log.h"

#include "engine/mkmodel.h"

#include "cli/commands.h"

namespace spillway::cli {
namespace {

struct MkModelFlags {
  std::string shape = "tinyllama-1.1b";
  std::string type = "q8_0";
  std::string arch = "llama";
  std::string vocab;
  std::uint64_t seed = 1;
  std::string out;
};

int run_mkmodel(const MkModelFlags& f) {
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "spillway mkmodel: %s\n", e.message().c_str());
    return e.code() == ErrorCode::kInvalidArgument ? 2 : 1;
  };
  auto shape = engine::named_model_shape(f.shape);
  if (!shape.ok()) return fail(shape.error());
  auto type = engine::parse_weight_type(f.type);
  if (!type.ok()) return fail(type.error());
  const auto start = std::chrono::steady_clock::now();
  engine::MkModelOptions options;
  options.shape = *shape;
  options.arch = f.arch;
  options.type = *type;
  options.vocab_path = f.vocab;
  options.seed = f.seed;
  options.out_path = f.out;
  if (Status s = engine::write_random_model(options); !s.ok()) return fail(s.error());
  std::error_code ec;
  const auto bytes = std::filesystem::file_size(f.out, ec);
  log_info(
      "model written",
      {kv("path", f.out), kv("shape", f.shape), kv("type", f.type), kv("bytes", bytes),
       kv("seconds",
          fmt::format(
              "{:.1f}",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()))});
  return 0;
}

}  // namespace

Command add_mkmodel_command(CLI::App& root) {
  auto f = std::make_shared<MkModelFlags>();
  CLI::App* app = root.add_subcommand(
      "mkmodel", "Write a random-weight Llama GGUF model of a realistic shape, for benchmarks");
  app->add_option("--shape", f->shape,
                  "tinyllama-1.1b (2048/5632, 22 layers), llama-110m (768/2048, 12 layers) or tiny")
      ->capture_default_str();
  app->add_option("--type", f->type, "Weight type: f32, f16, bf16, q8_0, q4_0, q4_k, q6_k")
      ->capture_default_str();
  app->add_option("--arch", f->arch, "llama, or qwen2 (attention biases, NeoX RoPE)")
      ->capture_default_str();
  app->add_option("--vocab", f->vocab,
                  "GGUF whose tokenizer to copy, e.g. ggml-vocab-llama-spm.gguf (default: a "
                  "built-in byte-level vocabulary)")
      ->check(CLI::ExistingFile);
  app->add_option("--seed", f->seed, "Seed for the weights")->capture_default_str();
  app->add_option("-o,--out", f->out, "Output .gguf path")->required();
  return {app, [f] { return run_mkmodel(*f); }};
}

}  // namespace spillway::cli
