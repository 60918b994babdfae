// Round trips of small requests over loopback: HttpClient -> HttpServer (2 I/O threads) on one
// kept-alive connection, full responses and short streamed responses.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

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

}  // namespace
}  // namespace spillway::net

BENCHMARK_MAIN();
