// The OpenAI-compatible HTTP API of one model replica, on top of the serving core:
//   POST /v1/chat/completions   chat (streaming or not), through the model's chat template
//   POST /v1/completions        legacy completions (text or token prompts, echo, logprobs;
//                               echo with logprobs also scores the prompt's tokens, the first
//                               with a null logprob, as OpenAI does; max_tokens 0 then only
//                               scores the prompt)
//   GET  /v1/models, /v1/models/{id}
//   GET  /health                the process is alive (200 always)
//   GET  /ready                 200 once the model is loaded and while accepting, else 503
//   GET  /metrics               Prometheus text: the engine's spillway:* series and HTTP ones
//
// Authentication: when API keys are configured, every /v1 route needs
// "Authorization: Bearer <key>" (401 otherwise); /health, /ready and /metrics stay open for
// probes and scrapers. Keys are compared in constant time and never logged.
//
// Tenancy: the prefix-cache namespace is the caller's identity (a hash of its API key, or
// "anonymous" without keys), so callers never share or time each other's cached prompts. A
// fleet gateway in front, calling with a key listed in `trusted_keys`, may instead pass the
// end tenant in "X-Spillway-Tenant", its priority class in "X-Spillway-Priority"
// (interactive | standard | batch, or an integer) and a shared namespace in
// "X-Spillway-Cache-Namespace"; from anyone else those headers are ignored.
//
// Streams: server-sent events exactly as OpenAI sends them, flushed per token; a client that
// disconnects cancels its generation at the next engine step.
//
// Thread-safety: handlers run on the HTTP server's I/O threads and never block; engine events
// are turned into response bytes on the engine's step thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/metrics.h"
#include "core/status.h"

#include "engine/serving_engine.h"
#include "net/router.h"
#include "openai/api_limits.h"

#include "serve/prompt_builder.h"

namespace spillway::serve {

struct OpenAiServiceOptions {
  std::string model_name;                 // What clients pass as `model`.
  std::vector<std::string> api_keys;      // Empty: no authentication.
  std::vector<std::string> trusted_keys;  // Keys whose callers may set X-Spillway-* headers.
  openai::ApiLimits limits;
  std::int32_t retry_after_s = 1;  // Retry-After on 429 and 503.
};

class OpenAiService {
 public:
  // REQUIRES: engine, prompts and metrics outlive the service and every response it started.
  OpenAiService(OpenAiServiceOptions options, engine::ServingEngine& engine,
                const PromptBuilder& prompts, MetricsRegistry& metrics);

  // Adds the routes above. Errors only if a route is already taken.
  [[nodiscard]] Status add_routes(net::Router& router);

  // /ready answers 503 and new generations are refused (503) after this.
  void set_ready(bool ready) { ready_.store(ready); }
  [[nodiscard]] bool ready() const { return ready_.load(); }

 private:
  struct Caller;
  [[nodiscard]] Result<Caller> authenticate(const net::HttpRequest& request) const;
  // The checks every generation route makes first, in order: the caller's key, readiness, the
  // body (`parse`), and the model it names. On failure the error has been sent and the result
  // is empty.
  template <typename Parsed, typename Parse>
  [[nodiscard]] std::optional<std::pair<Caller, Parsed>> admit(const net::HttpRequest& request,
                                                               net::ResponseWriter& writer,
                                                               Parse parse) const;
  void chat(net::HttpRequest request, net::ResponseWriter writer);
  void completions(net::HttpRequest request, net::ResponseWriter writer);
  void models(net::HttpRequest request, net::ResponseWriter writer) const;
  void metrics(net::ResponseWriter writer) const;
  void fail(net::ResponseWriter& writer, const Error& error,
            std::optional<std::string> param = std::nullopt) const;

  const OpenAiServiceOptions options_;
  engine::ServingEngine& engine_;
  const PromptBuilder& prompts_;
  MetricsRegistry& registry_;
  const std::int64_t created_unix_s_;
  std::atomic<bool> ready_{true};
  std::atomic<std::uint64_t> request_counter_{0};
};

}  // namespace spillway::serve
