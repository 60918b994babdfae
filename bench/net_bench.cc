// Round trips of small requests over loopback: HttpClient -> HttpServer (2 I/O threads) on one
// kept-alive connection, full responses and short streamed responses.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <string_view>

#include "net/http1_parse.h"
#include "net/http_client.h"
#include "net/http_server.h"

namespace spillway::net {
namespace {

std::unique_ptr<HttpServer> bench_server() {
  Router router;
  (void)router.add("GET", "/ping", [](HttpRequest, ResponseWriter w) {
    w.respond(HttpResponse::text(200, "pong"));
  });
  (void)router.add("POST", "/echo", [](HttpRequest req, ResponseWriter w) {
    w.respond(HttpResponse::json(200, std::move(req.body)));
  });
  (void)router.add("GET", "/stream", [](HttpRequest, ResponseWriter w) {
    w.start(200, {{"Content-Type", "text/event-stream"}});
    for (int i = 0; i < 16; ++i)
      w.write("data: {\"token\":\"abc\"}\n\n");
    w.finish();
  });
  HttpServerOptions options;
  options.io_threads = 2;
  auto server = std::make_unique<HttpServer>(options, std::move(router));
  if (!server->start().ok()) return nullptr;
  return server;
}

HttpClient bench_client(const HttpServer& server) {
  HttpClientOptions o;
  o.port = server.port();
  return HttpClient(o);
}

void BM_GetRoundTrip(benchmark::State& state) {
  auto server = bench_server();
  if (!server) return state.SkipWithError("server did not start");
  HttpClient client = bench_client(*server);
  const HttpClientRequest request{.method = "GET", .target = "/ping", .headers = {}, .body = {}};
  for (auto _ : state) {
    auto r = client.request(request);
    if (!r.ok()) return state.SkipWithError(r.error().to_string().c_str());
    benchmark::DoNotOptimize(r->body.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_GetRoundTrip)->UseRealTime();

void BM_PostEchoRoundTrip(benchmark::State& state) {
  auto server = bench_server();
  if (!server) return state.SkipWithError("server did not start");
  HttpClient client = bench_client(*server);
  const HttpClientRequest request{
      .method = "POST",
      .target = "/echo",
      .headers = {{"Content-Type", "application/json"}},
      .body = std::string(static_cast<std::size_t>(state.range(0)), 'x')};
  for (auto _ : state) {
    auto r = client.request(request);
    if (!r.ok()) return state.SkipWithError(r.error().to_string().c_str());
    benchmark::DoNotOptimize(r->body.data());
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_PostEchoRoundTrip)->Arg(256)->Arg(16 << 10)->UseRealTime();

void BM_StreamedResponse16Chunks(benchmark::State& state) {
  auto server = bench_server();
  if (!server) return state.SkipWithError("server did not start");
  HttpClient client = bench_client(*server);
  const HttpClientRequest request{.method = "GET", .target = "/stream", .headers = {}, .body = {}};
  std::size_t bytes = 0;
  for (auto _ : state) {
    auto r = client.stream(request, nullptr, [&](std::string_view piece) {
      bytes += piece.size();
      return true;
    });
    if (!r.ok()) return state.SkipWithError(r.error().to_string().c_str());
  }
  benchmark::DoNotOptimize(bytes);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StreamedResponse16Chunks)->UseRealTime();

// Reading heads (net/http1_parse.h), as the gateway reads each request and each replica answer:
// finding the end, then checking and splitting the fields.
constexpr std::string_view kRequestHead =
    "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 87\r\n"
    "Content-Type: application/json\r\n"
    "Authorization: Bearer sk-spw-0123456789abcdefghijklmnopqrstuv\r\n\r\n";
constexpr std::string_view kResponseHead =
    "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 24 Nov 2026 07:24:03 GMT\r\n"
    "Content-Type: application/json\r\nContent-Length: 269\r\nConnection: keep-alive\r\n"
    "X-Spillway-Usage: prompt_tokens=12 completion_tokens=3\r\n\r\n";

void BM_ParseRequestHead(benchmark::State& state) {
  http1::RequestHead head;
  for (auto _ : state) {
    const std::size_t size = http1::head_size(kRequestHead, 0);
    const Status s = http1::parse_request_head(kRequestHead.substr(0, size), head);
    benchmark::DoNotOptimize(s.ok());
    benchmark::DoNotOptimize(head.fields.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kRequestHead.size()));
}
BENCHMARK(BM_ParseRequestHead);

void BM_ParseResponseHead(benchmark::State& state) {
  http1::ResponseHead head;
  for (auto _ : state) {
    const std::size_t size = http1::head_size(kResponseHead, 0);
    const Status s = http1::parse_response_head(kResponseHead.substr(0, size), false, head);
    benchmark::DoNotOptimize(s.ok());
    benchmark::DoNotOptimize(head.fields.data());
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kResponseHead.size()));
}
BENCHMARK(BM_ParseResponseHead);

}  // namespace
}  // namespace spillway::net

BENCHMARK_MAIN();
