#include "load_clients.h"

#include <fmt/format.h>

#include <boost/json.hpp>

namespace spillway::reliability {
namespace {

namespace json = boost::json;

std::string request_body(bool chat, bool stream, int max_tokens, int n) {
  const std::string common =
      fmt::format(R"("model":"{}","max_tokens":{},"temperature":0.8,"seed":{},"stream":{})", kModel,
                  max_tokens, n, stream ? "true" : "false");
  if (chat) {
    return fmt::format(R"({{{},"messages":[{{"role":"user","content":"Tell me story {}"}}]}})",
                       common, n);
  }
  return fmt::format(R"({{{},"prompt":"Once upon a time, story {}"}})", common, n);
}

bool has_member(const json::value& v, std::string_view key) {
  return v.is_object() && v.as_object().contains(key);
}

}  // namespace

std::string judge(const Outcome& o) {
  if (!o.transport.ok()) return "client error: " + o.transport.error().to_string();
  if (o.status != 200) return fmt::format("status {}: {}", o.status, o.body.substr(0, 300));
  if (!o.stream) {
    boost::system::error_code ec;
    const json::value v = json::parse(o.body, ec);
    if (ec || !has_member(v, "choices") || v.at("choices").as_array().empty()) {
      return "not a completion: " + o.body.substr(0, 300);
    }
    return "";
  }
  if (!o.rest.empty()) return "unterminated event: " + o.rest.substr(0, 300);
  if (o.events.empty() || o.events.back() != "[DONE]") {
    return fmt::format("stream of {} events does not end with [DONE]", o.events.size());
  }
  for (std::size_t i = 0; i + 1 < o.events.size(); ++i) {
    boost::system::error_code ec;
    const json::value v = json::parse(o.events[i], ec);
    if (ec) return "event is not JSON: " + o.events[i].substr(0, 300);
    if (has_member(v, "error") && i + 2 != o.events.size()) {
      return "an error event is not the last before [DONE]: " + o.events[i];
    }
    if (!has_member(v, "error") && !has_member(v, "choices")) {
      return "event without choices: " + o.events[i].substr(0, 300);
    }
  }
  return "";
}

LoadClients::LoadClients(const Fleet& fleet, std::string prefix, int threads, Mix mix,
                         int max_tokens)
    : fleet_(fleet), prefix_(std::move(prefix)), mix_(mix), max_tokens_(max_tokens) {
  for (int t = 0; t < threads; ++t)
    threads_.emplace_back([this, t] { run(t); });
}

LoadClients::~LoadClients() {
  stop();
}

void LoadClients::stop() {
  stopping_.store(true);
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
}

std::int64_t LoadClients::finished_since(int phase) const {
  std::lock_guard lock(mu_);
  std::int64_t n = 0;
  for (const Outcome& o : outcomes_)
    n += o.phase_started >= phase ? 1 : 0;
  return n;
}

std::vector<Outcome> LoadClients::outcomes() const {
  std::lock_guard lock(mu_);
  return outcomes_;
}

void LoadClients::run(int thread) {
  for (int i = 0; !stopping_.load(); ++i) {
    Outcome o;
    o.request_id = fmt::format("{}-{}-{}", prefix_, thread, i);
    o.stream = mix_ == Mix::kMixed && (i + thread) % 2 == 1;
    const bool chat = (i / 2 + thread) % 2 == 0;
    const std::string target = chat ? "/v1/chat/completions" : "/v1/completions";
    const std::string body = request_body(chat, o.stream, max_tokens_, thread * 1000 + i);
    net::HttpHeaders headers;
    headers.set("X-Request-Id", o.request_id);
    o.phase_started = phase_.load();
    if (o.stream) {
      StreamReply r = fleet_.stream(target, body, {}, headers);
      o.transport = r.transport;
      o.status = r.status;
      o.body = std::move(r.body);
      o.events = std::move(r.events);
      o.rest = std::move(r.rest);
    } else {
      Reply r = fleet_.call("POST", target, body, kTenantKey, headers);
      o.transport = r.transport;
      o.status = r.status;
      o.body = std::move(r.body);
    }
    o.phase_ended = phase_.load();
    std::lock_guard lock(mu_);
    outcomes_.push_back(std::move(o));
  }
}

}  // namespace spillway::reliability
