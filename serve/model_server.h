// `spillway serve`: one model replica behind the OpenAI-compatible HTTP API. Loads the model,
// starts the serving core and the HTTP server, and shuts them down gracefully.
//
// Shutdown: /ready turns 503 and new generations are refused with 503 while the listener
// stays open for `unready_grace` (so load balancers and health checkers see the replica leave
// before its connections are refused), then the listener closes, in-flight requests get up to
// `shutdown_timeout` to finish, whatever is left is cancelled (its streams end with an error
// event) and everything stops.
//
// Thread-safety: start() and shutdown() from one controlling thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/metrics.h"
#include "core/status.h"

#include "engine/model.h"
#include "engine/serving_engine.h"
#include "net/http_server.h"
#include "net/http_server_options.h"
#include "openai/api_limits.h"

#include "serve/openai_service.h"
#include "serve/prompt_builder.h"

namespace spillway::serve {

struct ServeOptions {
  std::string model_path;
  std::string tokenizer_path;  // llama2.c models only.
  std::string model_name;      // Default: the file name without directory and extension.
  std::optional<std::string> chat_template_path;  // Overrides the model's template.
  std::vector<std::string> api_keys;
  std::vector<std::string> trusted_keys;
  engine::ServingOptions engine;
  net::HttpServerOptions http;
  openai::ApiLimits limits;
  std::chrono::milliseconds shutdown_timeout{30'000};
  // How long shutdown() keeps answering 503 (ready and generation routes) before it closes the
  // listener; 0 = close at once.
  std::chrono::milliseconds unready_grace{0};
};

class ModelServer {
 public:
  // Errors: the model does not load, bad options, the port cannot be bound.
  [[nodiscard]] static Result<std::unique_ptr<ModelServer>> start(ServeOptions options);
  ~ModelServer();  // shutdown()

  [[nodiscard]] std::uint16_t port() const { return http_->port(); }
  [[nodiscard]] const std::string& model_name() const { return options_.model_name; }
  [[nodiscard]] engine::ServingEngine& engine() { return *engine_; }
  [[nodiscard]] MetricsRegistry& metrics() { return metrics_; }
  [[nodiscard]] bool uses_fallback_template() const { return prompts_->uses_fallback_template(); }

  // The first phase of a graceful stop: /ready answers 503 and new generations are refused
  // (503) while the listener stays open and in-flight requests go on. Idempotent; shutdown()
  // does it too.
  void stop_ready();
  // Graceful stop (see the file comment); true if every request finished in time. Idempotent.
  bool shutdown();

 private:
  explicit ModelServer(ServeOptions options) : options_(std::move(options)) {}

  ServeOptions options_;
  MetricsRegistry metrics_;
  std::unique_ptr<engine::Model> model_;
  std::unique_ptr<engine::ServingEngine> engine_;
  std::optional<PromptBuilder> prompts_;
  std::unique_ptr<OpenAiService> service_;
  std::unique_ptr<net::HttpServer> http_;
  bool unready_ = false;
  bool stopped_ = false;
  bool clean_ = true;
};

}  // namespace spillway::serve
