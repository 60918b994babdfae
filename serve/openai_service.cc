#include "serve/openai_service.h"

#include <fmt/format.h>

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <span>
#include <variant>

#include "core/log.h"
#include "core/random.h"

#include "net/sse.h"
#include "openai/api_error.h"
#include "openai/chat_response.h"
#include "openai/completion_response.h"
#include "openai/models_response.h"
#include "openai/response_types.h"
#include "openai/usage_header.h"

namespace spillway::serve {
namespace {

using engine::FinishReason;
using engine::RequestStream;
using engine::StreamEvent;

std::int64_t unix_now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Compares without an early exit, so timing does not reveal how much of a key matched.
bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned diff = a.size() == b.size() ? 0u : 1u;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned>(static_cast<unsigned char>(a[i]) ^
                                  static_cast<unsigned char>(b.empty() ? 0 : b[i % b.size()]));
  }
  return diff == 0;
}

Result<std::int32_t> parse_priority(std::string_view v) {
  if (v == "interactive") return 2;
  if (v == "standard") return 1;
  if (v == "batch") return 0;
  if (v.size() == 1 && v[0] >= '0' && v[0] <= '9') return v[0] - '0';
  return make_error(ErrorCode::kInvalidArgument,
                    "X-Spillway-Priority must be interactive, standard, batch or 0-9 (got '{}')",
                    v.substr(0, 64));
}

openai::FinishReason to_openai(FinishReason r) {
  return r == FinishReason::kLength ? openai::FinishReason::kLength : openai::FinishReason::kStop;
}

std::uint64_t fresh_seed() {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}());
  std::lock_guard lock(mu);
  return rng();
}

// The engine request shared by both endpoints.
engine::EngineRequest engine_request(const openai::SamplingOptions& s, std::int32_t max_tokens,
                                     std::int32_t top_logprobs, bool logprobs) {
  engine::EngineRequest r;
  r.max_tokens = max_tokens;
  r.n = s.n;
  r.sampling.temperature = s.temperature;
  r.sampling.top_p = s.top_p;
  r.sampling.top_k = s.top_k;
  r.sampling.min_p = s.min_p;
  r.sampling.repetition_penalty = s.repetition_penalty;
  r.sampling.presence_penalty = s.presence_penalty;
  r.sampling.frequency_penalty = s.frequency_penalty;
  r.sampling.seed = s.seed ? static_cast<std::uint64_t>(*s.seed) : fresh_seed();
  r.sampling.top_logprobs = top_logprobs;
  r.logprobs = logprobs;
  r.stop = s.stop;
  return r;
}

openai::TokenLogprob to_logprob(const engine::Tokenizer& tok, const engine::SampledToken& s) {
  openai::TokenLogprob out;
  out.token = tok.token_to_piece(s.token);
  out.logprob = s.logprob;
  for (const engine::TokenLogprob& alt : s.top) {
    out.top_logprobs.push_back({tok.token_to_piece(alt.token), alt.logprob});
  }
  return out;
}

// The text of each prompt token, concatenating to the echoed prompt: text prompts were
// encoded with the vocabulary's space prefix, which the first piece after BOS drops (as the
// detokenizer does); token prompts echo their pieces as they are.
std::vector<std::string> prompt_pieces(const engine::Tokenizer& tok,
                                       std::span<const std::int32_t> tokens,
                                       bool strip_leading_space) {
  const engine::Vocab& vocab = tok.vocab();
  std::vector<std::string> out;
  out.reserve(tokens.size());
  bool at_start = strip_leading_space && vocab.add_space_prefix;
  for (const std::int32_t t : tokens) {
    std::string piece = tok.token_to_piece(t);
    if (at_start && !(vocab.bos_id >= 0 && t == vocab.bos_id)) {
      at_start = false;
      if (!piece.empty() && piece.front() == ' ') piece.erase(0, 1);
    }
    out.push_back(std::move(piece));
  }
  return out;
}

// Maps engine errors that reach a client after acceptance.
Error stream_error(const StreamEvent& ev) {
  if (ev.finish == FinishReason::kCancelled) {
    return ev.status.ok() ? make_error(ErrorCode::kCancelled, "the request was cancelled")
                          : ev.status.error();
  }
  return ev.status.ok() ? make_error(ErrorCode::kInternal, "generation failed") : ev.status.error();
}

// One HTTP exchange's generation: one or more engine streams (completions with several
// prompts) whose events become SSE chunks or one JSON body. Lives until every stream is done;
// its listeners run on the engine's step thread.
class Exchange : public std::enable_shared_from_this<Exchange> {
 public:
  enum class Kind { kChat, kCompletion };
  Exchange(Kind kind, net::ResponseWriter writer, openai::ResponseMeta meta, bool stream,
           bool include_usage, bool logprobs, std::int32_t choices, const engine::Tokenizer& tok)
      : kind_(kind),
        writer_(std::move(writer)),
        meta_(std::move(meta)),
        stream_(stream),
        include_usage_(include_usage),
        logprobs_(logprobs),
        tok_(tok),
        chat_chunks_(meta_, include_usage),
        completion_chunks_(meta_, include_usage, choices),
        texts_(static_cast<std::size_t>(choices)),
        finish_(static_cast<std::size_t>(choices), openai::FinishReason::kStop),
        token_logprobs_(static_cast<std::size_t>(choices)) {}

  // Choice text that comes before any generated text (completions with echo).
  void set_prefix(std::int32_t choice, std::string text) {
    texts_[static_cast<std::size_t>(choice)] = std::move(text);
  }

  // Completions with echo + logprobs: choices [first_choice, first_choice + n) start with the
  // prompt's tokens (`pieces`, concatenating to the echoed prompt), whose log-probabilities
  // the engine stream of that prompt delivers (kPromptLogprobs); the first token has none. In
  // a stream, the echoed prompt's chunk waits for them and carries them.
  void expect_prompt_logprobs(std::int32_t first_choice, std::int32_t n,
                              std::vector<std::string> pieces) {
    PromptEcho& e = prompt_echo_[first_choice];
    e.n = n;
    e.pieces = std::move(pieces);
    if (!e.pieces.empty()) e.entries.push_back({e.pieces.front(), std::nullopt, {}});
  }

  // A prompt only echoed, not generated from (completions with max_tokens 0): its tokens
  // still count in the usage.
  void count_echo_only_prompt(std::int64_t tokens) { echo_only_prompt_tokens_ += tokens; }

  // Starts the SSE response (stream) and attaches the engine streams: streams[k] carries the
  // choices [offsets[k], offsets[k] + n).
  void run(std::vector<std::shared_ptr<RequestStream>> streams, std::vector<std::int32_t> offsets) {
    streams_ = std::move(streams);
    offsets_ = std::move(offsets);
    open_ = static_cast<std::int32_t>(streams_.size());
    if (stream_) {
      writer_.start(200, net::sse_response_headers());
      if (kind_ == Kind::kChat) {
        for (std::size_t i = 0; i < texts_.size(); ++i) {
          writer_.write(
              net::format_sse_data(chat_chunks_.role_chunk(static_cast<std::int32_t>(i))));
        }
      } else {
        for (std::size_t i = 0; i < texts_.size(); ++i) {
          if (!texts_[i].empty() && echo_of(static_cast<std::int32_t>(i)) == nullptr) {
            writer_.write(net::format_sse_data(
                completion_chunks_.text_chunk(static_cast<std::int32_t>(i), texts_[i])));
          }
        }
      }
    }
    {
      std::lock_guard lock(mu_);
      for (auto& [first, e] : prompt_echo_) {
        if (e.entries.size() == e.pieces.size()) finish_prompt_echo(first, e);  // One token.
      }
    }
    if (streams_.empty()) {
      // Echo only (max_tokens 0): the prompts are the whole answer, each cut at its length.
      std::lock_guard lock(mu_);
      for (std::size_t i = 0; i < texts_.size(); ++i) {
        finish_[i] = openai::FinishReason::kLength;
        if (stream_) {
          writer_.write(net::format_sse_data(completion_chunks_.finish_chunk(
              static_cast<std::int32_t>(i), openai::FinishReason::kLength)));
        }
      }
      complete();
      return;
    }
    auto self = shared_from_this();
    // A client that goes away cancels every generation of this exchange.
    writer_.on_close([weak = std::weak_ptr<Exchange>(self)] {
      if (auto e = weak.lock()) {
        for (auto& s : e->streams_)
          s->cancel();
      }
    });
    for (std::size_t k = 0; k < streams_.size(); ++k) {
      RequestStream* s = streams_[k].get();
      s->set_listener([self, s, k] { self->on_events(*s, k); });
    }
  }

 private:
  void on_events(RequestStream& s, std::size_t k) {
    std::lock_guard lock(mu_);
    if (finished_streams_.size() < streams_.size()) finished_streams_.resize(streams_.size());
    for (StreamEvent& ev : s.drain())
      handle(ev, offsets_[k] + ev.index);
    if (s.done() && !finished_streams_[k]) {
      finished_streams_[k] = true;
      s.set_listener({});  // Breaks the stream → listener → exchange cycle.
      if (--open_ == 0) complete();
    }
  }

  struct PromptEcho {
    std::int32_t n = 0;
    std::vector<std::string> pieces;
    std::vector<openai::TokenLogprob> entries;  // The prompt's tokens scored so far.
    bool done = false;
  };

  // The prompt echo with logprobs that `choice` starts with, if any.
  PromptEcho* echo_of(std::int32_t choice) {
    auto it = prompt_echo_.upper_bound(choice);
    if (it == prompt_echo_.begin()) return nullptr;
    --it;
    return choice < it->first + it->second.n ? &it->second : nullptr;
  }

  // Every prompt token is scored: each choice of that prompt starts with them (a stream sends
  // the echoed prompt now, with them).
  void finish_prompt_echo(std::int32_t first, PromptEcho& e) {
    if (e.done) return;
    e.done = true;
    for (std::int32_t i = first; i < first + e.n; ++i) {
      const auto c = static_cast<std::size_t>(i);
      token_logprobs_[c].insert(token_logprobs_[c].begin(), e.entries.begin(), e.entries.end());
      if (stream_) {
        writer_.write(net::format_sse_data(completion_chunks_.text_chunk(
            i, texts_[c], std::span<const openai::TokenLogprob>(e.entries))));
      }
    }
  }

  void on_prompt_logprobs(const StreamEvent& ev, std::int32_t first) {
    const auto it = prompt_echo_.find(first);
    if (it == prompt_echo_.end() || it->second.done) return;
    PromptEcho& e = it->second;
    for (std::size_t i = 0; i < ev.prompt_logprobs.size(); ++i) {
      const auto position = static_cast<std::size_t>(ev.first_position) + i;
      if (position != e.entries.size() || position >= e.pieces.size()) return;  // Out of order.
      openai::TokenLogprob lp = to_logprob(tok_, ev.prompt_logprobs[i]);
      lp.token = e.pieces[position];
      e.entries.push_back(std::move(lp));
    }
    if (e.entries.size() == e.pieces.size()) finish_prompt_echo(first, e);
  }

  void handle(StreamEvent& ev, std::int32_t choice) {
    const auto c = static_cast<std::size_t>(choice);
    if (ev.kind == StreamEvent::Kind::kPromptLogprobs) {
      on_prompt_logprobs(ev, choice);
      return;
    }
    if (ev.kind == StreamEvent::Kind::kToken) {
      std::optional<openai::TokenLogprob> lp;
      if (logprobs_ && ev.logprob) lp = to_logprob(tok_, *ev.logprob);
      emit_text(choice, ev.text, lp);
      return;
    }
    // kFinish.
    // The engine's count includes an end-of-generation token, which streams no text.
    usage_.completion_tokens += ev.completion_tokens;
    if (!ev.text.empty()) emit_text(choice, ev.text, std::nullopt);
    prompt_tokens_by_stream_[choice] = ev.prompt_tokens;
    cached_by_stream_[choice] = ev.cached_prompt_tokens;
    if (ev.finish == FinishReason::kCancelled || ev.finish == FinishReason::kError) {
      if (!error_) error_ = stream_error(ev);
      return;
    }
    finish_[c] = to_openai(ev.finish);
    if (stream_ && !error_) {
      writer_.write(net::format_sse_data(
          kind_ == Kind::kChat ? chat_chunks_.finish_chunk(choice, finish_[c])
                               : completion_chunks_.finish_chunk(choice, finish_[c])));
    }
  }

  void emit_text(std::int32_t choice, const std::string& text,
                 const std::optional<openai::TokenLogprob>& lp) {
    const auto c = static_cast<std::size_t>(choice);
    if (lp) token_logprobs_[c].push_back(*lp);
    if (!stream_) {
      texts_[c] += text;
      return;
    }
    if (text.empty() && !lp) return;
    std::optional<std::span<const openai::TokenLogprob>> span;
    if (lp) span = std::span<const openai::TokenLogprob>(&token_logprobs_[c].back(), 1);
    writer_.write(net::format_sse_data(kind_ == Kind::kChat
                                           ? chat_chunks_.content_chunk(choice, text, span)
                                           : completion_chunks_.text_chunk(choice, text, span)));
  }

  openai::Usage usage() const {
    openai::Usage u = usage_;
    // Prompt tokens count once per prompt, not once per choice; cached ones likewise.
    std::int64_t prompt = 0, cached = 0;
    for (std::size_t k = 0; k < streams_.size(); ++k) {
      const auto it = prompt_tokens_by_stream_.find(offsets_[k]);
      if (it != prompt_tokens_by_stream_.end()) prompt += it->second;
      const auto ct = cached_by_stream_.find(offsets_[k]);
      if (ct != cached_by_stream_.end()) cached += ct->second;
    }
    u.prompt_tokens = prompt + echo_only_prompt_tokens_;
    u.cached_prompt_tokens = cached;
    return u;
  }

  void complete() {
    if (stream_) {
      if (error_) {
        writer_.write(
            net::format_sse_data(openai::render_error_body(openai::to_api_error(*error_))));
      } else if (include_usage_) {
        const openai::Usage u = usage();
        writer_.write(net::format_sse_data(kind_ == Kind::kChat
                                               ? chat_chunks_.usage_chunk(u)
                                               : completion_chunks_.usage_chunk(u)));
      }
      writer_.write(net::format_sse_data(openai::kStreamDone));
      writer_.finish();
      return;
    }
    if (error_) {
      const openai::ApiError e = openai::to_api_error(*error_);
      writer_.respond(net::HttpResponse::json(e.http_status, openai::render_error_body(e)));
      return;
    }
    std::string body;
    if (kind_ == Kind::kChat) {
      std::vector<openai::ChatChoice> choices;
      for (std::size_t i = 0; i < texts_.size(); ++i) {
        openai::ChatChoice c;
        c.index = static_cast<std::int32_t>(i);
        c.content = texts_[i];
        c.finish_reason = finish_[i];
        if (logprobs_) c.logprobs = token_logprobs_[i];
        choices.push_back(std::move(c));
      }
      body = openai::render_chat_completion(meta_, choices, usage());
    } else {
      std::vector<openai::CompletionChoice> choices;
      for (std::size_t i = 0; i < texts_.size(); ++i) {
        openai::CompletionChoice c;
        c.index = static_cast<std::int32_t>(i);
        c.text = texts_[i];
        c.finish_reason = finish_[i];
        if (logprobs_) c.logprobs = token_logprobs_[i];
        choices.push_back(std::move(c));
      }
      body = openai::render_completion(meta_, choices, usage());
    }
    net::HttpResponse response = net::HttpResponse::json(200, std::move(body));
    // The same counts for a gateway in front, which then need not read the body.
    response.headers.set(openai::kUsageHeader, openai::render_usage_header(usage()));
    writer_.respond(std::move(response));
  }

  const Kind kind_;
  net::ResponseWriter writer_;
  const openai::ResponseMeta meta_;
  const bool stream_;
  const bool include_usage_;
  const bool logprobs_;
  const engine::Tokenizer& tok_;
  std::mutex mu_;
  openai::ChatChunkWriter chat_chunks_;
  openai::CompletionChunkWriter completion_chunks_;
  std::vector<std::string> texts_;
  std::vector<openai::FinishReason> finish_;
  std::vector<std::vector<openai::TokenLogprob>> token_logprobs_;
  std::vector<std::shared_ptr<RequestStream>> streams_;
  std::vector<std::int32_t> offsets_;
  std::vector<bool> finished_streams_;
  std::map<std::int32_t, std::int32_t> prompt_tokens_by_stream_;
  std::map<std::int32_t, std::int32_t> cached_by_stream_;
  std::map<std::int32_t, PromptEcho> prompt_echo_;  // By first choice.
  std::int32_t open_ = 0;
  std::int64_t echo_only_prompt_tokens_ = 0;
  openai::Usage usage_;
  std::optional<Error> error_;
};

}  // namespace

struct OpenAiService::Caller {
  std::string cache_namespace;
  std::int32_t priority = 1;
};

OpenAiService::OpenAiService(OpenAiServiceOptions options, engine::ServingEngine& engine,
                             const PromptBuilder& prompts, MetricsRegistry& metrics)
    : options_(std::move(options)),
      engine_(engine),
      prompts_(prompts),
      registry_(metrics),
      created_unix_s_(unix_now_s()) {}

Status OpenAiService::add_routes(net::Router& router) {
  SPW_TRY(router.add(
      "POST", "/v1/chat/completions",
      [this](net::HttpRequest r, net::ResponseWriter w) { chat(std::move(r), std::move(w)); }));
  SPW_TRY(router.add("POST", "/v1/completions", [this](net::HttpRequest r, net::ResponseWriter w) {
    completions(std::move(r), std::move(w));
  }));
  SPW_TRY(router.add("GET", "/v1/models", [this](net::HttpRequest r, net::ResponseWriter w) {
    models(std::move(r), std::move(w));
  }));
  SPW_TRY(router.add("GET", "/v1/models/{id}", [this](net::HttpRequest r, net::ResponseWriter w) {
    models(std::move(r), std::move(w));
  }));
  SPW_TRY(router.add("GET", "/health", [](net::HttpRequest, net::ResponseWriter w) {
    w.respond(net::HttpResponse::json(200, R"({"status":"ok"})"));
  }));
  SPW_TRY(router.add("GET", "/ready", [this](net::HttpRequest, net::ResponseWriter w) {
    if (ready()) {
      w.respond(net::HttpResponse::json(200, R"({"status":"ready"})"));
    } else {
      net::HttpResponse r = net::HttpResponse::json(503, R"({"status":"not ready"})");
      r.headers.set("Retry-After", std::to_string(options_.retry_after_s));
      w.respond(std::move(r));
    }
  }));
  SPW_TRY(router.add("GET", "/metrics",
                     [this](net::HttpRequest, net::ResponseWriter w) { metrics(std::move(w)); }));
  return Status();
}

void OpenAiService::fail(net::ResponseWriter& writer, const Error& error,
                         std::optional<std::string> param) const {
  const openai::ApiError e =
      param ? openai::to_api_error(error, std::move(param)) : openai::to_api_error(error);
  net::HttpResponse r = net::HttpResponse::json(e.http_status, openai::render_error_body(e));
  if (e.http_status == 429 || e.http_status == 503) {
    r.headers.set("Retry-After", std::to_string(options_.retry_after_s));
  }
  if (e.http_status == 401) r.headers.set("WWW-Authenticate", "Bearer");
  writer.respond(std::move(r));
}

Result<OpenAiService::Caller> OpenAiService::authenticate(const net::HttpRequest& request) const {
  Caller caller;
  caller.cache_namespace = "anonymous";
  if (options_.api_keys.empty()) return caller;
  const auto header = request.headers.get("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (!header || header->size() <= kBearer.size() ||
      !net::iequals(header->substr(0, kBearer.size()), kBearer)) {
    return make_error(ErrorCode::kUnauthenticated,
                      "missing API key: send the header 'Authorization: Bearer <key>'");
  }
  const std::string_view key = header->substr(kBearer.size());
  bool known = false;
  for (const std::string& k : options_.api_keys)
    known |= constant_time_equal(k, key);
  if (!known) return make_error(ErrorCode::kUnauthenticated, "invalid API key");
  caller.cache_namespace = fmt::format("key:{:016x}", std::hash<std::string_view>{}(key));
  bool trusted = false;
  for (const std::string& k : options_.trusted_keys)
    trusted |= constant_time_equal(k, key);
  if (!trusted) return caller;
  if (const auto tenant = request.headers.get("X-Spillway-Tenant"); tenant && !tenant->empty()) {
    caller.cache_namespace = fmt::format("tenant:{}", tenant->substr(0, 256));
  }
  if (const auto shared = request.headers.get("X-Spillway-Cache-Namespace");
      shared && !shared->empty()) {
    caller.cache_namespace = fmt::format("shared:{}", shared->substr(0, 256));
  }
  if (const auto p = request.headers.get("X-Spillway-Priority")) {
    SPW_ASSIGN_OR_RETURN(caller.priority, parse_priority(*p));
  }
  return caller;
}

template <typename Parsed, typename Parse>
std::optional<std::pair<OpenAiService::Caller, Parsed>> OpenAiService::admit(
    const net::HttpRequest& request, net::ResponseWriter& writer, Parse parse) const {
  auto caller = authenticate(request);
  if (!caller.ok()) {
    fail(writer, caller.error());
    return std::nullopt;
  }
  if (!ready()) {
    fail(writer, make_error(ErrorCode::kUnavailable, "the server is not ready"));
    return std::nullopt;
  }
  Result<Parsed> parsed = parse(request.body, options_.limits);
  if (!parsed.ok()) {
    fail(writer, parsed.error());
    return std::nullopt;
  }
  if (parsed->model != options_.model_name) {
    fail(writer,
         make_error(ErrorCode::kNotFound, "The model '{}' does not exist; this server has '{}'",
                    parsed->model, options_.model_name),
         "model");
    return std::nullopt;
  }
  return std::pair<Caller, Parsed>(std::move(caller).value(), std::move(parsed).value());
}

void OpenAiService::chat(net::HttpRequest request, net::ResponseWriter writer) {
  auto admitted =
      admit<openai::ChatCompletionRequest>(request, writer, openai::parse_chat_completion_request);
  if (!admitted) return;
  const Caller& caller = admitted->first;
  const openai::ChatCompletionRequest& req = admitted->second;
  auto prompt = prompts_.chat(req.messages);
  if (!prompt.ok()) return fail(writer, prompt.error(), "messages");
  const auto n_prompt = static_cast<std::int32_t>(prompt->tokens.size());
  const std::int32_t max_tokens =
      req.sampling.max_tokens.value_or(std::max(1, engine_.context() - n_prompt));
  engine::EngineRequest er =
      engine_request(req.sampling, max_tokens, req.top_logprobs, req.logprobs);
  er.id = request.request_id;
  er.prompt = std::move(prompt->tokens);
  er.priority = caller.priority;
  er.cache_namespace = caller.cache_namespace;
  auto stream = engine_.submit(std::move(er));
  if (!stream.ok()) {
    const bool length = stream.error().code() == ErrorCode::kOutOfRange;
    return fail(writer, stream.error(),
                length ? std::optional<std::string>("messages") : std::nullopt);
  }
  openai::ResponseMeta meta;
  static thread_local SeededRandom ids(fresh_seed());
  meta.id = openai::new_response_id(openai::kChatCompletionIdPrefix, ids);
  meta.created_unix_s = unix_now_s();
  meta.model = options_.model_name;
  auto exchange = std::make_shared<Exchange>(
      Exchange::Kind::kChat, std::move(writer), meta, req.stream.stream, req.stream.include_usage,
      req.logprobs, req.sampling.n, engine_.model().tokenizer());
  exchange->run({*stream}, {0});
}

void OpenAiService::completions(net::HttpRequest request, net::ResponseWriter writer) {
  auto admitted =
      admit<openai::CompletionRequest>(request, writer, openai::parse_completion_request);
  if (!admitted) return;
  const Caller& caller = admitted->first;
  const openai::CompletionRequest& req = admitted->second;
  // Even logprobs 0 asks for the prompt tokens' log-probabilities when echoing.
  const bool prompt_logprobs = req.echo && req.logprobs.has_value();
  const std::int32_t n = req.sampling.n;
  const auto choices = static_cast<std::int32_t>(req.prompts.size()) * n;
  openai::ResponseMeta meta;
  static thread_local SeededRandom ids(fresh_seed());
  meta.id = openai::new_response_id(openai::kCompletionIdPrefix, ids);
  meta.created_unix_s = unix_now_s();
  meta.model = options_.model_name;
  const bool logprobs = req.logprobs.has_value();
  auto exchange = std::make_shared<Exchange>(Exchange::Kind::kCompletion, writer, meta,
                                             req.stream.stream, req.stream.include_usage, logprobs,
                                             choices, engine_.model().tokenizer());
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<std::int32_t> offsets;
  for (std::size_t p = 0; p < req.prompts.size(); ++p) {
    auto prompt = prompts_.completion(req.prompts[p], static_cast<std::int32_t>(p));
    if (!prompt.ok()) {
      for (auto& s : streams)
        s->cancel();
      return fail(writer, prompt.error());
    }
    const std::int32_t first_choice = static_cast<std::int32_t>(p) * n;
    if (req.echo) {
      for (std::int32_t i = 0; i < n; ++i)
        exchange->set_prefix(first_choice + i, prompt->text);
    }
    const std::int32_t max_tokens = req.sampling.max_tokens.value_or(16);
    if (prompt_logprobs) {
      exchange->expect_prompt_logprobs(
          first_choice, n,
          prompt_pieces(engine_.model().tokenizer(), prompt->tokens,
                        std::holds_alternative<std::string>(req.prompts[p])));
    }
    if (max_tokens == 0 && !prompt_logprobs) {  // Echo only (the parser allows 0 only with echo).
      exchange->count_echo_only_prompt(static_cast<std::int64_t>(prompt->tokens.size()));
      continue;
    }
    engine::EngineRequest er =
        engine_request(req.sampling, max_tokens, logprobs ? *req.logprobs : 0, logprobs);
    er.id = fmt::format("{}-{}", request.request_id, p);
    er.prompt = std::move(prompt->tokens);
    er.strip_leading_space = prompt->starts_after_bos;
    er.prompt_logprobs = prompt_logprobs;  // With max_tokens 0 the prompt is only scored.
    er.prompt_top_logprobs = prompt_logprobs ? *req.logprobs : 0;
    er.priority = caller.priority;
    er.cache_namespace = caller.cache_namespace;
    auto stream = engine_.submit(std::move(er));
    if (!stream.ok()) {
      for (auto& s : streams)
        s->cancel();
      const bool length = stream.error().code() == ErrorCode::kOutOfRange;
      return fail(writer, stream.error(),
                  length ? std::optional<std::string>("prompt") : std::nullopt);
    }
    streams.push_back(*stream);
    offsets.push_back(first_choice);
  }
  exchange->run(std::move(streams), std::move(offsets));
}

void OpenAiService::models(net::HttpRequest request, net::ResponseWriter writer) const {
  auto caller = authenticate(request);
  if (!caller.ok()) return fail(writer, caller.error());
  openai::ModelCard card{options_.model_name, created_unix_s_, "spillway"};
  if (const auto id = request.param("id")) {
    if (*id != options_.model_name) {
      return fail(writer, make_error(ErrorCode::kNotFound, "The model '{}' does not exist", *id),
                  "model");
    }
    writer.respond(net::HttpResponse::json(200, openai::render_model(card)));
    return;
  }
  writer.respond(net::HttpResponse::json(200, openai::render_model_list({&card, 1})));
}

void OpenAiService::metrics(net::ResponseWriter writer) const {
  writer.respond(net::HttpResponse::with_body(200, registry_.render_prometheus(),
                                              "text/plain; version=0.0.4; charset=utf-8"));
}

}  // namespace spillway::serve
