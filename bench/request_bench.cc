// The gateway's per-request JSON work, on the bodies an OpenAI client sends: reading a chat
// request (the one-pass common reading and the document reading it falls back to), adding
// stream_options.include_usage to a streamed request, and reading usage out of an answer.
// Sizes: the gateway benchmark's 84-byte request and a 40-message conversation (~16 KiB).
#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include <string>

#include "openai/chat_request.h"
#include "openai/chat_request_fast.h"

#include "gateway/openai_rewrite.h"

namespace spillway {
namespace {

std::string small_chat() {
  return R"({"model":"bench","messages":[{"role":"user","content":"Say hello."}],"max_tokens":8})";
}

std::string conversation_chat() {
  std::string messages;
  for (int i = 0; i < 40; ++i) {
    if (i > 0) messages += ',';
    messages += fmt::format(R"({{"role":"{}","content":"{}"}})", i % 2 ? "assistant" : "user",
                            std::string(400, static_cast<char>('a' + i % 26)));
  }
  return fmt::format(R"({{"model":"bench","messages":[{}],"max_tokens":256,"stream":true}})",
                     messages);
}

std::string body_for(std::int64_t which) {
  return which == 0 ? small_chat() : conversation_chat();
}

// Read is the one-pass reading or the document reading.
template <auto Read>
void BM_ChatReading(benchmark::State& state) {
  const std::string body = body_for(state.range(0));
  for (auto _ : state) {
    auto r = Read(body, openai::ApiLimits{});
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body.size()));
}
BENCHMARK_TEMPLATE(BM_ChatReading, &openai::internal::read_common_chat_request)
    ->Name("BM_ChatCommonReading")
    ->Arg(0)
    ->Arg(1);
BENCHMARK_TEMPLATE(BM_ChatReading, &openai::internal::read_chat_request_document)
    ->Name("BM_ChatDocumentReading")
    ->Arg(0)
    ->Arg(1);

// Arg(1): appended (no stream_options member). Arg(3): the same conversation with
// stream_options present, which goes through the parsed object.
void BM_WithStreamUsage(benchmark::State& state) {
  std::string body = body_for(state.range(0) & 1);
  if (state.range(0) >= 2) body.insert(1, R"("stream_options":{"include_usage":false},)");
  for (auto _ : state) {
    auto r = gateway::with_stream_usage(body, 64);
    benchmark::DoNotOptimize(r);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(body.size()));
}
BENCHMARK(BM_WithStreamUsage)->Arg(0)->Arg(1)->Arg(2)->Arg(3);

void BM_ReadUsage(benchmark::State& state) {
  const std::string answer =
      R"({"id":"chatcmpl-1","object":"chat.completion","created":1700000000,"model":"bench",)"
      R"("choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help )"
      R"(you today?"},"logprobs":null,"finish_reason":"stop"}],)"
      R"("usage":{"prompt_tokens":12,"completion_tokens":8,"total_tokens":20}})";
  for (auto _ : state) {
    auto u = gateway::read_usage(answer);
    benchmark::DoNotOptimize(u);
  }
}
BENCHMARK(BM_ReadUsage);

}  // namespace
}  // namespace spillway

BENCHMARK_MAIN();
