// spillway serve's HTTP API end to end over loopback, on stories260K: responses in OpenAI's
// shapes, streaming equal to non-streaming, errors with OpenAI bodies and statuses, limits,
// metrics, and cancellation when the client goes away.
#include "serve/model_server.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <boost/json.hpp>

#include "net/http_client.h"

#include "test_support.h"

namespace spillway::serve {
namespace {

namespace json = boost::json;

class ModelServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string model = testing::shared_path("models/stories260K.gguf");
    SPW_REQUIRE_SHARED_FILE(model);
    ServeOptions o;
    o.model_path = model;
    o.model_name = "stories";
    o.api_keys = {"sk-test-1", "sk-gateway"};
    o.trusted_keys = {"sk-gateway"};
    o.engine.threads = 1;
    o.engine.kv_cache_blocks = 64;
    o.engine.max_running = 8;
    o.engine.max_batch_tokens = 64;
    o.engine.max_waiting = 4;
    o.http.max_body_bytes = 64 * 1024;
    o.shutdown_timeout = std::chrono::milliseconds(2000);
    auto s = ModelServer::start(std::move(o));
    ASSERT_TRUE(s.ok()) << s.error().message();
    server_ = std::move(s).value();
  }

  net::HttpClient client() const {
    net::HttpClientOptions o;
    o.port = server_->port();
    o.io_timeout = std::chrono::milliseconds(30'000);
    return net::HttpClient(o);
  }

  net::HttpClientResponse call(const std::string& method, const std::string& target,
                               const std::string& body = "", const std::string& key = "sk-test-1") {
    net::HttpClient c = client();
    net::HttpClientRequest r;
    r.method = method;
    r.target = target;
    r.body = body;
    if (!key.empty()) r.headers.set("Authorization", "Bearer " + key);
    if (!body.empty()) r.headers.set("Content-Type", "application/json");
    auto resp = c.request(r);
    EXPECT_TRUE(resp.ok()) << resp.error().message();
    return resp.ok() ? *resp : net::HttpClientResponse{};
  }

  // The data payloads of an SSE stream.
  std::vector<std::string> stream(const std::string& target, const std::string& body) {
    net::HttpClient c = client();
    net::HttpClientRequest r;
    r.method = "POST";
    r.target = target;
    r.body = body;
    r.headers.set("Authorization", "Bearer sk-test-1");
    std::string raw;
    auto resp = c.stream(
        r, [](int, const net::HttpHeaders&) { return true; },
        [&](std::string_view piece) {
          raw += piece;
          return true;
        });
    EXPECT_TRUE(resp.ok());
    EXPECT_EQ(resp->status, 200);
    EXPECT_EQ(resp->headers.get("Content-Type").value_or(""), "text/event-stream");
    std::vector<std::string> events;
    for (std::size_t pos = 0; pos < raw.size();) {
      const std::size_t end = raw.find("\n\n", pos);
      EXPECT_NE(end, std::string::npos) << "unterminated event";
      if (end == std::string::npos) break;
      const std::string_view ev(raw.data() + pos, end - pos);
      EXPECT_TRUE(ev.starts_with("data: ")) << ev;
      events.emplace_back(ev.substr(6));
      pos = end + 2;
    }
    return events;
  }

  static std::string error_type(const net::HttpClientResponse& r) {
    const json::value v = json::parse(r.body);
    return std::string(v.at("error").at("type").as_string());
  }

  std::unique_ptr<ModelServer> server_;
};

TEST_F(ModelServerTest, ChatCompletionHasOpenAiShapeAndUsage) {
  const auto r = call("POST", "/v1/chat/completions",
                      R"({"model":"stories","messages":[{"role":"user","content":"Tell a story"}],
                          "max_tokens":12,"temperature":0})");
  ASSERT_EQ(r.status, 200) << r.body;
  const json::value v = json::parse(r.body);
  EXPECT_EQ(v.at("object").as_string(), "chat.completion");
  EXPECT_TRUE(v.at("id").as_string().starts_with("chatcmpl-"));
  EXPECT_EQ(v.at("model").as_string(), "stories");
  const auto& choice = v.at("choices").as_array().at(0);
  EXPECT_EQ(choice.at("message").at("role").as_string(), "assistant");
  EXPECT_FALSE(choice.at("message").at("content").as_string().empty());
  EXPECT_TRUE(choice.at("logprobs").is_null());
  const auto& usage = v.at("usage");
  EXPECT_EQ(usage.at("completion_tokens").as_int64(), 12);
  // The fallback template renders "<s>User: Tell a story\n\nAssistant:".
  auto tokens =
      server_->engine().model().tokenizer().encode("User: Tell a story\n\nAssistant:", true, false);
  ASSERT_TRUE(tokens.ok());
  EXPECT_EQ(usage.at("prompt_tokens").as_int64(), static_cast<std::int64_t>(tokens->size()));
  EXPECT_EQ(usage.at("total_tokens").as_int64(), usage.at("prompt_tokens").as_int64() + 12);
  // The same counts in the header a gateway reads instead of the body.
  EXPECT_EQ(r.headers.get("X-Spillway-Usage").value_or(""),
            fmt::format("prompt_tokens={} completion_tokens=12", tokens->size()));
}

TEST_F(ModelServerTest, StreamConcatenatesToTheNonStreamingText) {
  const std::string body =
      R"({"model":"stories","messages":[{"role":"user","content":"Once upon a time"}],
          "max_tokens":40,"temperature":0,"seed":3)";
  const auto whole = call("POST", "/v1/chat/completions", body + "}");
  ASSERT_EQ(whole.status, 200);
  const std::string expected = std::string(json::parse(whole.body)
                                               .at("choices")
                                               .as_array()
                                               .at(0)
                                               .at("message")
                                               .at("content")
                                               .as_string());

  const auto events = stream("/v1/chat/completions",
                             body + R"(,"stream":true,"stream_options":{"include_usage":true}})");
  ASSERT_GE(events.size(), 4u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  int finishes = 0;
  std::size_t finish_at = 0;
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    const json::value v = json::parse(events[i]);
    EXPECT_EQ(v.at("object").as_string(), "chat.completion.chunk");
    const auto& choices = v.at("choices").as_array();
    if (i == 0) {
      EXPECT_EQ(choices.at(0).at("delta").at("role").as_string(), "assistant");
    }
    if (choices.empty()) {  // The usage chunk, last before [DONE].
      EXPECT_EQ(i, events.size() - 2);
      EXPECT_EQ(v.at("usage").at("completion_tokens").as_int64(), 40);
      continue;
    }
    EXPECT_TRUE(v.at("usage").is_null());
    const auto& delta = choices.at(0).at("delta").as_object();
    if (const auto* c = delta.if_contains("content")) text += c->as_string();
    if (!choices.at(0).at("finish_reason").is_null()) {
      ++finishes;
      finish_at = i;
      EXPECT_EQ(choices.at(0).at("finish_reason").as_string(), "length");
      EXPECT_FALSE(delta.contains("content"));
    }
  }
  EXPECT_EQ(finishes, 1);
  // Role chunk, content deltas, the finish chunk, then only the usage chunk and [DONE].
  EXPECT_EQ(finish_at, events.size() - 3);
  EXPECT_EQ(text, expected);

  // Without stream_options.include_usage no chunk has a "usage" field.
  const auto plain = stream("/v1/chat/completions", body + R"(,"stream":true})");
  ASSERT_GE(plain.size(), 3u);
  EXPECT_EQ(plain.back(), "[DONE]");
  for (std::size_t i = 0; i + 1 < plain.size(); ++i) {
    EXPECT_FALSE(json::parse(plain[i]).as_object().contains("usage")) << plain[i];
  }
  EXPECT_FALSE(json::parse(plain[plain.size() - 2])
                   .at("choices")
                   .as_array()
                   .at(0)
                   .at("finish_reason")
                   .is_null());
}

// Echo with max_tokens 0: the prompt is the whole answer, streamed as SSE when asked, and its
// tokens count as prompt tokens.
TEST_F(ModelServerTest, EchoOnlyCompletionStreamsAndCountsThePrompt) {
  const std::string prompt = "Once upon a time";
  auto tokens = server_->engine().model().tokenizer().encode(prompt, true, false);
  ASSERT_TRUE(tokens.ok());
  const auto n_prompt = static_cast<std::int64_t>(tokens->size());
  const std::string body =
      R"({"model":"stories","prompt":")" + prompt + R"(","echo":true,"max_tokens":0)";

  const auto r = call("POST", "/v1/completions", body + "}");
  ASSERT_EQ(r.status, 200) << r.body;
  const json::value v = json::parse(r.body);
  const auto& choice = v.at("choices").as_array().at(0);
  EXPECT_EQ(choice.at("text").as_string(), prompt);
  EXPECT_EQ(choice.at("finish_reason").as_string(), "length");
  EXPECT_EQ(v.at("usage").at("prompt_tokens").as_int64(), n_prompt);
  EXPECT_EQ(v.at("usage").at("completion_tokens").as_int64(), 0);
  EXPECT_EQ(r.headers.get("X-Spillway-Usage").value_or(""),
            fmt::format("prompt_tokens={} completion_tokens=0", n_prompt));

  const auto events = stream("/v1/completions",
                             body + R"(,"stream":true,"stream_options":{"include_usage":true}})");
  ASSERT_EQ(events.size(), 4u);
  const json::value text = json::parse(events[0]);
  EXPECT_EQ(text.at("object").as_string(), "text_completion");
  EXPECT_EQ(text.at("choices").as_array().at(0).at("text").as_string(), prompt);
  EXPECT_EQ(json::parse(events[1]).at("choices").as_array().at(0).at("finish_reason").as_string(),
            "length");
  const json::value usage = json::parse(events[2]);
  EXPECT_TRUE(usage.at("choices").as_array().empty());
  EXPECT_EQ(usage.at("usage").at("prompt_tokens").as_int64(), n_prompt);
  EXPECT_EQ(usage.at("usage").at("completion_tokens").as_int64(), 0);
  EXPECT_EQ(events[3], "[DONE]");
}

// Echo with logprobs scores the prompt as OpenAI does: one entry per prompt token (BOS
// included), the first with null token_logprobs and top_logprobs, the rest negative, their
// tokens concatenating to the prompt text; then the generated tokens' entries. Streaming gives
// the same entries, the echoed prompt's chunk carrying the prompt's.
TEST_F(ModelServerTest, EchoWithLogprobsScoresThePromptTokens) {
  const std::string prompt = "Once upon a time, there was a little dog";
  auto tokens = server_->engine().model().tokenizer().encode(prompt, true, false);
  ASSERT_TRUE(tokens.ok());
  const std::size_t n_prompt = tokens->size();

  // Checks one choice's logprobs object; returns its token_logprobs (null as +1).
  auto check = [&](const json::value& choice, std::size_t generated, std::size_t top) {
    const std::string text(choice.at("text").as_string());
    EXPECT_TRUE(text.starts_with(prompt)) << text;
    const auto& lp = choice.at("logprobs");
    const auto& toks = lp.at("tokens").as_array();
    const auto& values = lp.at("token_logprobs").as_array();
    const auto& tops = lp.at("top_logprobs").as_array();
    const auto& offsets = lp.at("text_offset").as_array();
    EXPECT_EQ(toks.size(), n_prompt + generated);
    EXPECT_EQ(values.size(), toks.size());
    EXPECT_EQ(tops.size(), toks.size());
    EXPECT_EQ(offsets.size(), toks.size());
    std::string joined, prompt_part;
    std::vector<double> out;
    for (std::size_t i = 0; i < toks.size(); ++i) {
      EXPECT_EQ(offsets.at(i).to_number<std::int64_t>(), static_cast<std::int64_t>(joined.size()));
      joined += toks.at(i).as_string();
      if (i + 1 == n_prompt) prompt_part = joined;
      if (i == 0) {
        EXPECT_TRUE(values.at(0).is_null());
        EXPECT_TRUE(tops.at(0).is_null());
        out.push_back(1.0);
        continue;
      }
      const double v = values.at(i).to_number<double>();
      EXPECT_LT(v, 0.0) << i;
      EXPECT_LE(tops.at(i).as_object().size(), top) << i;
      if (top > 0) {
        EXPECT_GE(tops.at(i).as_object().size(), 1u) << i;
      }
      out.push_back(v);
    }
    EXPECT_EQ(prompt_part, prompt);
    EXPECT_EQ(joined, text);
    return out;
  };

  // Scoring only (max_tokens 0, logprobs 0), as evaluation harnesses do.
  const auto r = call("POST", "/v1/completions",
                      R"({"model":"stories","prompt":")" + prompt +
                          R"(","echo":true,"max_tokens":0,"logprobs":0})");
  ASSERT_EQ(r.status, 200) << r.body;
  const json::value v = json::parse(r.body);
  const auto& only = v.at("choices").as_array().at(0);
  EXPECT_EQ(only.at("text").as_string(), prompt);
  EXPECT_EQ(only.at("finish_reason").as_string(), "length");
  (void)check(only, 0, 0);
  EXPECT_EQ(v.at("usage").at("prompt_tokens").as_int64(), static_cast<std::int64_t>(n_prompt));
  EXPECT_EQ(v.at("usage").at("completion_tokens").as_int64(), 0);

  // With generation, n = 2 and two alternatives per token, streaming and not.
  const std::string body = R"({"model":"stories","prompt":")" + prompt +
                           R"(","echo":true,"max_tokens":5,"logprobs":2,"n":2,"temperature":0)";
  const auto whole = call("POST", "/v1/completions", body + "}");
  ASSERT_EQ(whole.status, 200) << whole.body;
  const json::value whole_body = json::parse(whole.body);
  const auto& choices = whole_body.at("choices").as_array();
  ASSERT_EQ(choices.size(), 2u);
  const auto first = check(choices[0], 5, 2);
  EXPECT_EQ(check(choices[1], 5, 2), first);

  const auto events = stream("/v1/completions", body + R"(,"stream":true})");
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::vector<std::string> texts(2);
  std::vector<std::vector<double>> values(2);
  std::vector<std::vector<std::string>> toks(2);
  for (std::size_t i = 0; i + 1 < events.size(); ++i) {
    const json::value chunk = json::parse(events[i]);
    const auto& c = chunk.at("choices").as_array().at(0);
    const auto k = static_cast<std::size_t>(c.at("index").as_int64());
    ASSERT_LT(k, 2u);
    const std::string delta(c.at("text").as_string());
    if (texts[k].empty() && !delta.empty()) {
      // The first text chunk is the echoed prompt, with all of the prompt's entries.
      EXPECT_EQ(delta, prompt);
      EXPECT_EQ(c.at("logprobs").at("tokens").as_array().size(), n_prompt);
    }
    texts[k] += delta;
    if (c.at("logprobs").is_null()) continue;
    const auto& lp = c.at("logprobs");
    for (std::size_t t = 0; t < lp.at("tokens").as_array().size(); ++t) {
      toks[k].emplace_back(lp.at("tokens").as_array().at(t).as_string());
      const auto& x = lp.at("token_logprobs").as_array().at(t);
      values[k].push_back(x.is_null() ? 1.0 : x.to_number<double>());
    }
  }
  for (std::size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(texts[k], choices[k].at("text").as_string());
    const auto& want = choices[k].at("logprobs").at("tokens").as_array();
    ASSERT_EQ(toks[k].size(), want.size());
    for (std::size_t t = 0; t < want.size(); ++t)
      EXPECT_EQ(toks[k][t], want.at(t).as_string());
    ASSERT_EQ(values[k].size(), first.size());
    for (std::size_t t = 0; t < first.size(); ++t)
      EXPECT_NEAR(values[k][t], first[t], 1e-4) << k << " " << t;
  }
}

TEST_F(ModelServerTest, CompletionsWithNStopAndLogprobs) {
  const auto r = call("POST", "/v1/completions",
                      R"({"model":"stories","prompt":["Once upon a time","The dog"],"n":2,
                          "max_tokens":8,"temperature":0,"logprobs":2,"echo":false})");
  ASSERT_EQ(r.status, 200) << r.body;
  const json::value v = json::parse(r.body);
  EXPECT_EQ(v.at("object").as_string(), "text_completion");
  const auto& choices = v.at("choices").as_array();
  ASSERT_EQ(choices.size(), 4u);
  // Greedy: both choices of one prompt agree; the two prompts differ.
  EXPECT_EQ(choices[0].at("text"), choices[1].at("text"));
  EXPECT_NE(choices[0].at("text"), choices[2].at("text"));
  const auto& lp = choices[0].at("logprobs");
  EXPECT_EQ(lp.at("tokens").as_array().size(), 8u);
  EXPECT_EQ(lp.at("top_logprobs").as_array().at(0).as_object().size(), 2u);
  for (const auto& x : lp.at("token_logprobs").as_array())
    EXPECT_LE(x.as_double(), 0.0);

  const std::string text = std::string(choices[0].at("text").as_string());
  ASSERT_GE(text.size(), 6u);
  const std::string stop = text.substr(3, 3);
  const auto s = call("POST", "/v1/completions",
                      R"({"model":"stories","prompt":"Once upon a time","max_tokens":8,
                          "temperature":0,"stop":[")" +
                          stop + R"("]})");
  ASSERT_EQ(s.status, 200) << s.body;
  const json::value sv = json::parse(s.body);
  const auto& c = sv.at("choices").as_array().at(0);
  EXPECT_EQ(c.at("text").as_string(), text.substr(0, 3));
  EXPECT_EQ(c.at("finish_reason").as_string(), "stop");
}

TEST_F(ModelServerTest, ErrorsUseOpenAiBodiesAndStatuses) {
  const std::string ok_messages = R"("messages":[{"role":"user","content":"hi"}])";
  auto check = [&](const net::HttpClientResponse& r, int status, const std::string& type) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_EQ(error_type(r), type) << r.body;
  };
  check(call("POST", "/v1/chat/completions", "{not json", "sk-test-1"), 400,
        "invalid_request_error");
  check(call("POST", "/v1/chat/completions",
             R"({"model":"stories",)" + ok_messages + R"(,"temperature":-1})"),
        400, "invalid_request_error");
  EXPECT_EQ(json::parse(call("POST", "/v1/chat/completions",
                             R"({"model":"stories",)" + ok_messages + R"(,"n":0})")
                            .body)
                .at("error")
                .at("param")
                .as_string(),
            "n");
  check(call("POST", "/v1/chat/completions",
             R"({"model":"stories",)" + ok_messages + R"(,"max_tokens":100000})"),
        400, "invalid_request_error");
  check(call("POST", "/v1/chat/completions", R"({"model":"stories",)" + ok_messages + "}", ""), 401,
        "authentication_error");
  check(call("POST", "/v1/chat/completions", R"({"model":"stories",)" + ok_messages + "}",
             "sk-wrong"),
        401, "authentication_error");
  check(call("POST", "/v1/chat/completions", R"({"model":"gpt-4",)" + ok_messages + "}"), 404,
        "not_found_error");
  check(call("GET", "/v1/nothing"), 404, "invalid_request_error");
  const auto wrong_method = call("GET", "/v1/chat/completions");
  EXPECT_EQ(wrong_method.status, 405);
  EXPECT_EQ(wrong_method.headers.get("Allow").value_or(""), "POST");
  check(call("POST", "/v1/chat/completions", std::string(70 * 1024, 'x')), 413,
        "invalid_request_error");
}

TEST_F(ModelServerTest, ProbesModelsAndMetrics) {
  EXPECT_EQ(call("GET", "/health", "", "").status, 200);
  EXPECT_EQ(call("GET", "/ready", "", "").status, 200);
  const auto models = call("GET", "/v1/models");
  ASSERT_EQ(models.status, 200);
  const json::value m = json::parse(models.body);
  EXPECT_EQ(m.at("object").as_string(), "list");
  EXPECT_EQ(m.at("data").as_array().at(0).at("id").as_string(), "stories");
  EXPECT_EQ(call("GET", "/v1/models/stories").status, 200);
  EXPECT_EQ(call("GET", "/v1/models/other").status, 404);
  // The same long prompt twice: the second finds its full blocks in the prefix cache.
  std::int64_t prompt_tokens = 0, completion_tokens = 0;
  for (const char* prompt : {"Hi",
                             "Once upon a time, there was a little girl named Lily. She "
                             "loved to play outside in the sunshine with her dog.",
                             "Once upon a time, there was a little girl named Lily. She "
                             "loved to play outside in the sunshine with her dog."}) {
    const auto r =
        call("POST", "/v1/completions",
             R"({"model":"stories","max_tokens":3,"prompt":")" + std::string(prompt) + "\"}");
    ASSERT_EQ(r.status, 200) << r.body;
    const json::value usage = json::parse(r.body).at("usage");
    prompt_tokens += usage.at("prompt_tokens").as_int64();
    completion_tokens += usage.at("completion_tokens").as_int64();
  }
  const auto metrics = call("GET", "/metrics", "", "");
  ASSERT_EQ(metrics.status, 200);
  const auto value = [&](std::string_view name) {
    const std::string line = "\n" + std::string(name) + " ";
    const std::size_t at = metrics.body.find(line);
    EXPECT_NE(at, std::string::npos) << name;
    return at == std::string::npos ? -1.0 : std::stod(metrics.body.substr(at + line.size()));
  };
  EXPECT_EQ(value("spillway:prompt_tokens_total"), static_cast<double>(prompt_tokens));
  EXPECT_EQ(value("spillway:generation_tokens_total"), static_cast<double>(completion_tokens));
  EXPECT_GE(value("spillway:prefix_cache_hits_total"), 16.0);  // At least one 16-token block.
  EXPECT_GE(value("spillway:prefix_cache_queries_total"),
            value("spillway:prefix_cache_hits_total"));
  for (const char* name :
       {"spillway:num_requests_running", "spillway:num_requests_waiting",
        "spillway:kv_cache_usage_perc", "spillway:prompt_tokens_total",
        "spillway:generation_tokens_total", "spillway:time_to_first_token_seconds_bucket",
        "spillway:inter_token_latency_seconds_bucket",
        "spillway:e2e_request_latency_seconds_bucket", "spillway:request_queue_time_seconds_bucket",
        "spillway:prefix_cache_queries_total", "spillway:prefix_cache_hits_total"}) {
    EXPECT_NE(metrics.body.find(name), std::string::npos) << name;
  }
  server_->shutdown();
}

TEST_F(ModelServerTest, FullQueueAnswers429WithRetryAfter) {
  // Long generations fill the batch (max_running, or the KV cache first); four more fill the
  // waiting queue; the rest are refused at once with 429.
  std::vector<std::thread> clients;
  std::atomic<int> ok{0}, limited{0};
  for (int i = 0; i < 20; ++i) {
    clients.emplace_back([&] {
      net::HttpClient c = client();
      net::HttpClientRequest r;
      r.method = "POST";
      r.target = "/v1/completions";
      r.headers.set("Authorization", "Bearer sk-test-1");
      r.body = R"({"model":"stories","prompt":"Once","max_tokens":300,"temperature":0})";
      auto resp = c.request(r);
      if (!resp.ok()) return;
      if (resp->status == 200) ++ok;
      if (resp->status == 429) {
        ++limited;
        EXPECT_EQ(resp->headers.get("Retry-After").value_or(""), "1");
      }
    });
  }
  for (auto& t : clients)
    t.join();
  EXPECT_GT(limited.load(), 0);
  // How many get in depends on how fast the engine thread moves waiting requests into the
  // batch while the burst arrives (under ASan it can be slower than the whole burst).
  EXPECT_GE(ok.load(), 1);
  EXPECT_EQ(ok.load() + limited.load(), 20);
}

TEST_F(ModelServerTest, ClientDisconnectCancelsTheGeneration) {
  {
    net::HttpClient c = client();
    net::HttpClientRequest r;
    r.method = "POST";
    r.target = "/v1/completions";
    r.headers.set("Authorization", "Bearer sk-test-1");
    r.body = R"({"model":"stories","prompt":"Once","max_tokens":400,"stream":true})";
    int pieces = 0;
    auto resp = c.stream(
        r, [](int, const net::HttpHeaders&) { return true; },
        [&](std::string_view) { return ++pieces < 3; });  // Hang up early.
    EXPECT_FALSE(resp.ok());
  }
  ASSERT_TRUE(server_->engine().wait_idle(std::chrono::seconds(20)));
  const engine::EngineStats st = server_->engine().stats();
  EXPECT_EQ(st.kv_blocks_used, 0);
  EXPECT_LT(st.scheduler.computed_tokens, 300u);  // Stopped long before 400 tokens.
}

// Idle keep-alive connections cost no threads: with a thousand of them open, the process has
// exactly the threads it had before (the I/O threads and the engine's).
TEST_F(ModelServerTest, ThousandIdleKeepAliveConnectionsCostNoThreads) {
  const auto threads = [] {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& task : std::filesystem::directory_iterator("/proc/self/task"))
      ++n;
    return n;
  };
  const std::size_t before = threads();
  constexpr int kConnections = 1000;
  std::vector<net::HttpClient> idle;
  idle.reserve(kConnections);
  for (int i = 0; i < kConnections; ++i) {
    idle.push_back(client());
    net::HttpClientRequest r;
    r.target = "/health";
    auto resp = idle.back().request(r);
    ASSERT_TRUE(resp.ok()) << i << ": " << resp.error().message();
    ASSERT_EQ(resp->status, 200);
  }
  EXPECT_EQ(threads(), before);
  // All of them are still open (the server's own gauge; this request's connection is one more).
  const std::string metrics = call("GET", "/metrics", "", "").body;
  const std::string_view name = "\nspillway_http_connections_open ";
  const std::size_t at = metrics.find(name);
  ASSERT_NE(at, std::string::npos);
  EXPECT_GE(std::stol(metrics.substr(at + name.size())), kConnections + 1);
  // And the server still generates.
  EXPECT_EQ(
      call("POST", "/v1/completions", R"({"model":"stories","prompt":"Hi","max_tokens":2})").status,
      200);
}

// The first phase of shutdown: the listener is still open, /ready and new generations answer
// 503 (what a load balancer sees while the replica leaves), in-flight requests go on.
TEST_F(ModelServerTest, AnswersServiceUnavailableWhileNotReady) {
  EXPECT_EQ(call("GET", "/ready").status, 200);
  server_->stop_ready();
  EXPECT_EQ(call("GET", "/ready").status, 503);
  const auto r =
      call("POST", "/v1/completions", R"({"model":"stories","prompt":"Once","max_tokens":4})");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(error_type(r), "service_unavailable_error");
  EXPECT_EQ(call("GET", "/health").status, 200);
  EXPECT_TRUE(server_->shutdown());
}

}  // namespace
}  // namespace spillway::serve
