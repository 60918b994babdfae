#include "serve/model_server.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "core/log.h"

#include "openai/api_error.h"

namespace spillway::serve {
namespace {

constexpr std::size_t kMaxTemplateFileBytes = 1 << 20;

Result<std::string> read_template(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::kNotFound, "{}: cannot open the chat template", path);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  if (text.size() > kMaxTemplateFileBytes) {
    return make_error(ErrorCode::kPayloadTooLarge, "{}: chat template over {} bytes", path,
                      kMaxTemplateFileBytes);
  }
  return text;
}

}  // namespace

Result<std::unique_ptr<ModelServer>> ModelServer::start(ServeOptions options) {
  if (options.model_name.empty()) {
    options.model_name = std::filesystem::path(options.model_path).stem().string();
  }
  SPW_TRY(options.http.validate());
  std::unique_ptr<ModelServer> s(new ModelServer(std::move(options)));
  ServeOptions& o = s->options_;
  SPW_ASSIGN_OR_RETURN(s->model_, engine::Model::load({o.model_path, o.tokenizer_path}));
  std::optional<std::string> override_template;
  if (o.chat_template_path) {
    SPW_ASSIGN_OR_RETURN(override_template, read_template(*o.chat_template_path));
  }
  SPW_ASSIGN_OR_RETURN(PromptBuilder prompts, PromptBuilder::create(*s->model_, override_template));
  s->prompts_.emplace(std::move(prompts));
  SPW_ASSIGN_OR_RETURN(s->engine_,
                       engine::ServingEngine::create(*s->model_, o.engine, &s->metrics_));
  OpenAiServiceOptions so;
  so.model_name = o.model_name;
  so.api_keys = o.api_keys;
  so.trusted_keys = o.trusted_keys;
  so.limits = o.limits;
  s->service_ = std::make_unique<OpenAiService>(so, *s->engine_, *s->prompts_, s->metrics_);
  net::Router router;
  SPW_TRY(s->service_->add_routes(router));
  net::HttpServerOptions http = o.http;
  http.metrics = &s->metrics_;
  http.error_renderer = [](int status, std::string_view message) {
    openai::ApiError e;
    e.http_status = status;
    e.type = status >= 500 ? "server_error" : "invalid_request_error";
    e.message = std::string(message);
    return net::HttpResponse::json(status, openai::render_error_body(e));
  };
  s->http_ = std::make_unique<net::HttpServer>(http, std::move(router));
  SPW_TRY(s->http_->start());
  return s;
}

ModelServer::~ModelServer() {
  shutdown();
}

void ModelServer::stop_ready() {
  if (!http_ || unready_) return;
  unready_ = true;
  service_->set_ready(false);
  engine_->stop_accepting();
}

bool ModelServer::shutdown() {
  if (stopped_) return clean_;
  stopped_ = true;
  if (!http_) return true;
  if (!unready_) {
    stop_ready();
    if (options_.unready_grace.count() > 0) std::this_thread::sleep_for(options_.unready_grace);
  }
  http_->stop_accepting();
  clean_ = engine_->wait_idle(options_.shutdown_timeout);
  if (!clean_) {
    log_warn("shutdown timeout: cancelling the requests still running",
             {kv("running", engine_->stats().running), kv("waiting", engine_->stats().waiting)});
  }
  // End what is left (its clients get an error event or response), let the responses reach
  // their clients, then close every connection and only then stop the engine, which the
  // handlers reference.
  if (!clean_) {
    engine_->cancel_all();
    (void)engine_->wait_idle(std::chrono::seconds(10));
  }
  http_->drain(std::chrono::milliseconds(2000));
  http_->stop();
  engine_.reset();
  return clean_;
}

}  // namespace spillway::serve
