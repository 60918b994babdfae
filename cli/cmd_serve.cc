// spillway serve: one model replica behind the OpenAI-compatible HTTP API.
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <CLI/CLI.hpp>

#include "core/log.h"

#include "engine/kv_cache.h"

#include "serve/model_server.h"

#include "cli/commands.h"
#include "cli/secrets.h"

namespace spillway::cli {
namespace {

struct ServeFlags {
  serve::ServeOptions options;
  std::string chat_template;
  std::vector<std::string> api_key_files;
  std::vector<std::string> trusted_key_files;
  std::string kv_type = "f16";
  std::int64_t shutdown_timeout_ms = 30'000;
  std::int64_t unready_grace_ms = 0;
  // HTTP timeouts (net::HttpServerOptions), in milliseconds.
  std::int64_t header_timeout_ms = 0;
  std::int64_t body_timeout_ms = 0;
  std::int64_t idle_timeout_ms = 0;
  std::int64_t write_timeout_ms = 0;
};

int run_serve(ServeFlags& f) {
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "spillway serve: %s\n", e.message().c_str());
    return e.code() == ErrorCode::kInvalidArgument ? 2 : 1;
  };
  // Keys from files and the environment join those of --api-key / --trusted-key (which put
  // the key on the command line, readable by every user of the machine).
  for (auto [files, env, keys] :
       {std::tuple{&f.api_key_files, kApiKeysEnv, &f.options.api_keys},
        std::tuple{&f.trusted_key_files, kTrustedKeysEnv, &f.options.trusted_keys}}) {
    for (const std::string& file : *files) {
      auto from_file = read_key_file(file);
      if (!from_file.ok()) return fail(from_file.error());
      keys->insert(keys->end(), from_file->begin(), from_file->end());
    }
    auto from_env = keys_from_env(env);
    if (!from_env.ok()) return fail(from_env.error());
    keys->insert(keys->end(), from_env->begin(), from_env->end());
  }
  auto kv_type = engine::parse_kv_type(f.kv_type);
  if (!kv_type.ok()) return fail(kv_type.error());
  f.options.engine.kv_type = *kv_type;
  if (!f.chat_template.empty()) f.options.chat_template_path = f.chat_template;
  if (f.options.engine.threads == 0) {
    f.options.engine.threads =
        static_cast<std::int32_t>(std::max(1u, std::thread::hardware_concurrency()));
  }
  f.options.http.header_timeout = std::chrono::milliseconds(f.header_timeout_ms);
  f.options.http.body_timeout = std::chrono::milliseconds(f.body_timeout_ms);
  f.options.http.idle_timeout = std::chrono::milliseconds(f.idle_timeout_ms);
  f.options.http.write_timeout = std::chrono::milliseconds(f.write_timeout_ms);
  // One body limit: the API's own check must not refuse what the HTTP layer accepted.
  f.options.limits.max_body_bytes = f.options.http.max_body_bytes;
  f.options.shutdown_timeout = std::chrono::milliseconds(f.shutdown_timeout_ms);
  f.options.unready_grace = std::chrono::milliseconds(f.unready_grace_ms);

  // Every thread started from here on inherits this mask, so SIGINT/SIGTERM reach only the
  // sigwait below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto server = serve::ModelServer::start(f.options);
  if (!server.ok()) return fail(server.error());
  const auto& e = (*server)->engine();
  log_info("ready",
           {kv("url", fmt::format("http://{}:{}/v1", f.options.http.host, (*server)->port())),
            kv("model", (*server)->model_name()), kv("context", e.context()),
            kv("kv_cache_mib", e.kv_cache_bytes() >> 20),
            kv("kv_type", engine::kv_type_name(e.options().kv_type)),
            kv("kv_cache_tokens",
               static_cast<std::int64_t>(e.stats().kv_blocks_total) * e.options().block_tokens),
            kv("threads", f.options.engine.threads),
            kv("auth", f.options.api_keys.empty() ? "none" : "api-key"),
            kv("chat_template", (*server)->uses_fallback_template() ? "fallback" : "model")});
  int sig = 0;
  sigwait(&signals, &sig);
  log_info("shutting down", {kv("signal", sig == SIGINT ? "SIGINT" : "SIGTERM")});
  const bool clean = (*server)->shutdown();
  log_info("stopped", {kv("clean", clean)});
  return 0;
}

}  // namespace

Command add_serve_command(CLI::App& root) {
  auto f = std::make_shared<ServeFlags>();
  serve::ServeOptions& o = f->options;
  o.http.port = 8000;
  f->header_timeout_ms = o.http.header_timeout.count();
  f->body_timeout_ms = o.http.body_timeout.count();
  f->idle_timeout_ms = o.http.idle_timeout.count();
  f->write_timeout_ms = o.http.write_timeout.count();
  o.engine.threads = 0;  // All cores unless --threads says otherwise.
  CLI::App* app = root.add_subcommand(
      "serve", "Serve one model over the OpenAI-compatible HTTP API (chat, completions, SSE)");
  app->add_option("-m,--model", o.model_path, "GGUF model file")->required();
  app->add_option("--tokenizer", o.tokenizer_path,
                  "llama2.c tokenizer file (llama2.c models only)");
  app->add_option("--model-name", o.model_name,
                  "Name clients use as `model` (default: the file name without extension)");
  app->add_option("--chat-template", f->chat_template,
                  "Jinja chat template file overriding the model's tokenizer.chat_template "
                  "(a model with neither gets a role-prefixed fallback: \"User: ...\\n\\n"
                  "Assistant:\")");
  app->add_option("--host", o.http.host, "Address to listen on")->capture_default_str();
  app->add_option("--port", o.http.port, "Port (0: any free port)")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  app->add_option("--api-key", o.api_keys,
                  "Require 'Authorization: Bearer KEY' (repeat for several keys; visible to "
                  "other users in the process list: prefer --api-key-file or SPILLWAY_API_KEYS)");
  app->add_option("--api-key-file", f->api_key_files,
                  "File of API keys, one per line (also: SPILLWAY_API_KEYS, comma-separated)")
      ->check(CLI::ExistingFile);
  app->add_option("--trusted-key", o.trusted_keys,
                  "API key of a gateway allowed to set X-Spillway-Tenant/-Priority headers");
  app->add_option("--trusted-key-file", f->trusted_key_files,
                  "File of trusted gateway keys, one per line (also: SPILLWAY_TRUSTED_KEYS)")
      ->check(CLI::ExistingFile);
  app->add_option("--threads", o.engine.threads, "Engine threads (default: all cores)")
      ->check(CLI::Range(1, 512));
  app->add_option("--kv-cache-mib", o.engine.kv_cache_mib, "KV cache size, allocated at start")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 22));
  app->add_option("--kv-cache-tokens", o.engine.kv_cache_tokens,
                  "KV cache size in token positions instead (rounded up to whole blocks; 0: use "
                  "--kv-cache-mib)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 30));
  app->add_option("--block-tokens", o.engine.block_tokens, "Positions per KV-cache block")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app->add_option("--kv-type", f->kv_type,
                  "KV cache element type: f16, f32 or q8_0 (head_dim a multiple of 32)")
      ->capture_default_str();
  app->add_option("--ctx-size", o.engine.context,
                  "Tokens per sequence (0: the model's training context)")
      ->capture_default_str()
      ->check(CLI::Range(0, 1 << 24));
  app->add_option("--max-batch-tokens", o.engine.max_batch_tokens, "Tokens per engine step")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 16));
  app->add_option("--max-running", o.engine.max_running, "Sequences batched together")
      ->capture_default_str()
      ->check(CLI::Range(1, 4096));
  app->add_option("--max-prompt-logprob-tokens", o.engine.max_prompt_logprob_tokens,
                  "Prompt positions scored per step for echo + logprobs (sets the logits "
                  "buffer: max-running plus this many rows)")
      ->capture_default_str()
      ->check(CLI::Range(1, 65536));
  app->add_option("--max-waiting", o.engine.max_waiting, "Requests queued before answering 429")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app->add_option("--max-connections", o.http.max_connections,
                  "Connections open at once (idle keep-alive ones included); more are closed "
                  "at accept")
      ->capture_default_str()
      ->check(CLI::Range(1, 1'000'000));
  app->add_option("--max-body-bytes", o.http.max_body_bytes, "Request body; beyond it: 413")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{0}, std::size_t{1} << 30));
  app->add_option("--max-header-bytes", o.http.max_header_bytes,
                  "Request line and header fields together; beyond it: 431")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1} << 10, std::size_t{1} << 20));
  app->add_option("--max-url-bytes", o.http.max_url_bytes,
                  "Request target (path and query); beyond it: 414")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{16}, std::size_t{1} << 20));
  constexpr std::int64_t kDayMs = 24LL * 3600 * 1000;
  app->add_option("--header-timeout-ms", f->header_timeout_ms,
                  "From a request's first byte (or the connection's start) to the end of its "
                  "headers; a slower client is closed")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, kDayMs));
  app->add_option("--body-timeout-ms", f->body_timeout_ms,
                  "From the end of the headers to the end of the body; beyond it: 408")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, kDayMs));
  app->add_option("--idle-timeout-ms", f->idle_timeout_ms,
                  "An idle keep-alive connection is closed after this long")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, kDayMs));
  app->add_option("--write-timeout-ms", f->write_timeout_ms,
                  "One write to a client that does not read; beyond it the connection closes "
                  "(a stream's generation is cancelled)")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{1}, kDayMs));
  app->add_option("--io-threads", o.http.io_threads, "HTTP event-loop threads")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app->add_option("--shutdown-timeout-ms", f->shutdown_timeout_ms,
                  "On SIGINT/SIGTERM, time in-flight requests get to finish")
      ->capture_default_str()
      ->check(CLI::Range(0, 3'600'000));
  app->add_option("--unready-grace-ms", f->unready_grace_ms,
                  "On SIGINT/SIGTERM, answer 503 on /ready and new requests for this long before "
                  "closing the listener (set it to a load balancer's probe interval)")
      ->capture_default_str()
      ->check(CLI::Range(0, 600'000));
  return {app, [f] { return run_serve(*f); }};
}

}  // namespace spillway::cli
