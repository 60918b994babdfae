// HttpServer over real loopback sockets: routing, errors, keep-alive, limits, timeouts,
// connection cap, metrics. Raw sockets send exactly the bytes each case needs.
#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/metrics.h"

#include "net/http_server.h"

#include "net_test_support.h"

namespace spillway::net {
namespace {

using testing::RawSocket;
using testing::read_response;
using testing::simple_get;
using testing::start_server;
using testing::test_options;
using testing::wait_until;

Router demo_router() {
  Router r;
  EXPECT_TRUE(r.add("GET", "/hello", [](HttpRequest req, ResponseWriter w) {
                 w.respond(
                     HttpResponse::text(200, "hi " + req.query_param("who").value_or("there")));
               }).ok());
  EXPECT_TRUE(r.add("POST", "/v1/fleet/pools/{name}/drain", [](HttpRequest req, ResponseWriter w) {
                 w.respond(HttpResponse::text(
                     202, std::string(req.param("name").value_or("?")) + ":" + req.body));
               }).ok());
  EXPECT_TRUE(r.add("GET", "/whoami", [](HttpRequest req, ResponseWriter w) {
                 w.respond(HttpResponse::text(200, req.remote_address));
               }).ok());
  return r;
}

TEST(HttpServer, RoutesExactAndPatternPaths) {
  auto server = start_server(demo_router());
  RawSocket s(server->port());
  ASSERT_TRUE(s.connected());
  ASSERT_TRUE(s.send(simple_get("/hello?who=bob")));
  auto r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "hi bob");
  EXPECT_EQ(r->headers.get("Content-Type"), "text/plain; charset=utf-8");
  EXPECT_TRUE(r->headers.contains("Date"));

  ASSERT_TRUE(s.send(
      "POST /v1/fleet/pools/gpu-east/drain HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nnow!"));
  r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(r->body, "gpu-east:now!");
}

TEST(HttpServer, NotFoundAndMethodNotAllowed) {
  auto server = start_server(demo_router());
  RawSocket s(server->port());
  ASSERT_TRUE(s.send(simple_get("/nope")));
  auto r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->headers.get("Content-Type"), "application/json");
  EXPECT_NE(r->body.find(R"("code":404)"), std::string::npos) << r->body;

  ASSERT_TRUE(s.send("DELETE /hello HTTP/1.1\r\nHost: t\r\n\r\n"));  // Same connection.
  r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->headers.get("Allow"), "GET, HEAD");

  ASSERT_TRUE(s.send("POST /v1/fleet/pools/%zz/drain HTTP/1.1\r\nHost: t\r\n\r\n"));
  r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
}

// The answer to GET /missing from a server with `renderer`.
std::optional<testing::ParsedResponse> missing_route_answer(ErrorRenderer renderer) {
  HttpServerOptions o = test_options();
  o.error_renderer = std::move(renderer);
  auto server = start_server(demo_router(), o);
  RawSocket s(server->port());
  if (!s.send(simple_get("/missing"))) return std::nullopt;
  return read_response(s);
}

TEST(HttpServer, PluggableErrorRenderer) {
  auto r = missing_route_answer([](int status, std::string_view message) {
    return HttpResponse::json(status, "{\"custom\":\"" + std::string(message) + "\"}");
  });
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->body, R"({"custom":"no route for GET /missing"})");
}

// The renderer's fields are written only when valid: a value with CR LF would add a field of
// the renderer's choosing (or end the head early).
TEST(HttpServer, ErrorRendererFieldsAreChecked) {
  auto r = missing_route_answer([](int status, std::string_view) {
    HttpResponse answer = HttpResponse::json(status, "{}");
    answer.headers.add("X-Good", "yes");
    answer.headers.add("X-Bad", "a\r\nX-Injected: 1");
    answer.headers.add("Bad Name", "x");
    return answer;
  });
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->headers.get("X-Good"), "yes");
  EXPECT_FALSE(r->headers.contains("X-Bad"));
  EXPECT_FALSE(r->headers.contains("X-Injected"));
  EXPECT_FALSE(r->headers.contains("Bad Name"));
  EXPECT_EQ(r->body, "{}");
}

TEST(HttpServer, KeepAliveServesSeveralRequestsOnOneConnection) {
  auto server = start_server(demo_router());
  RawSocket s(server->port());
  std::vector<std::string> peers;
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(s.send(simple_get("/whoami")));
    auto r = read_response(s);
    ASSERT_TRUE(r) << "request " << i;
    EXPECT_EQ(r->status, 200);
    EXPECT_FALSE(r->headers.contains("Connection"));  // Keep-alive is the HTTP/1.1 default.
    peers.push_back(r->body);
  }
  for (const auto& p : peers)
    EXPECT_EQ(p, peers.front());  // Same client port: the same TCP connection.
  EXPECT_EQ(server->open_connections(), 1);
}

TEST(HttpServer, PipelinedRequestsAreAnsweredInOrder) {
  auto server = start_server(demo_router());
  RawSocket s(server->port());
  ASSERT_TRUE(
      s.send(simple_get("/hello?who=1") + simple_get("/nope") + simple_get("/hello?who=3")));
  auto r1 = read_response(s);
  auto r2 = read_response(s);
  auto r3 = read_response(s);
  ASSERT_TRUE(r1 && r2 && r3);
  EXPECT_EQ(r1->body, "hi 1");
  EXPECT_EQ(r2->status, 404);
  EXPECT_EQ(r3->body, "hi 3");
}

TEST(HttpServer, ConnectionCloseAndHttp10) {
  auto server = start_server(demo_router());
  RawSocket s(server->port());
  ASSERT_TRUE(s.send(simple_get("/hello", "Connection: close\r\n")));
  auto r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers.get("Connection"), "close");
  EXPECT_TRUE(s.wait_closed());

  RawSocket old(server->port());
  ASSERT_TRUE(old.send("GET /hello HTTP/1.0\r\n\r\n"));
  r = read_response(old);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->headers.get("Connection"), "close");
  EXPECT_TRUE(old.wait_closed());
}

TEST(HttpServer, HeadGetsHeadersWithoutBody) {
  auto server = start_server(demo_router());
  RawSocket s(server->port());
  ASSERT_TRUE(s.send("HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n" + simple_get("/hello")));
  auto head = read_response(s, /*head_only=*/true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->headers.get("Content-Length"), "8");  // "hi there"
  auto get = read_response(s);  // The next bytes are the GET's response, not a body.
  ASSERT_TRUE(get);
  EXPECT_EQ(get->body, "hi there");
}

TEST(HttpServer, PayloadTooLargeByContentLength) {
  HttpServerOptions o = test_options();
  o.max_body_bytes = 1024;
  auto server = start_server(demo_router(), o);
  RawSocket s(server->port());
  ASSERT_TRUE(
      s.send("POST /v1/fleet/pools/a/drain HTTP/1.1\r\nHost: t\r\nContent-Length: 1025\r\n\r\n"));
  auto r = read_response(s);  // Answered without the body being sent.
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(r->headers.get("Connection"), "close");
  EXPECT_TRUE(s.wait_closed());
}

TEST(HttpServer, PayloadTooLargeWhileReadingChunkedBody) {
  HttpServerOptions o = test_options();
  o.max_body_bytes = 1024;
  auto server = start_server(demo_router(), o);
  RawSocket s(server->port());
  std::string request =
      "POST /v1/fleet/pools/a/drain HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 5; ++i)
    request += "200\r\n" + std::string(512, 'x') + "\r\n";  // 2560 bytes in all.
  request += "0\r\n\r\n";
  ASSERT_TRUE(s.send(request));
  auto r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_TRUE(s.wait_closed());

  // Within the limit, a chunked body arrives whole.
  RawSocket ok(server->port());
  ASSERT_TRUE(ok.send(
      "POST /v1/fleet/pools/a/drain HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
  r = read_response(ok);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(r->body, "a:abcde");
}

TEST(HttpServer, HeaderFieldsTooLarge) {
  HttpServerOptions o = test_options();
  o.max_header_bytes = 4096;
  o.max_url_bytes = 1024;
  auto server = start_server(demo_router(), o);
  RawSocket s(server->port());
  ASSERT_TRUE(s.send(simple_get("/hello", "X-Big: " + std::string(5000, 'a') + "\r\n")));
  auto r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_TRUE(s.wait_closed());
}

TEST(HttpServer, UriTooLong) {
  HttpServerOptions o = test_options();
  o.max_header_bytes = 4096;
  o.max_url_bytes = 1024;
  auto server = start_server(demo_router(), o);
  // Over the URL limit but within the header limit.
  RawSocket s(server->port());
  ASSERT_TRUE(s.send(simple_get("/hello?x=" + std::string(2000, 'a'))));
  auto r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 414);
  EXPECT_TRUE(s.wait_closed());
  // Over the header limit too: still 414, because the target alone is too long.
  RawSocket t(server->port());
  ASSERT_TRUE(t.send(simple_get("/hello?x=" + std::string(8000, 'a'))));
  r = read_response(t);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 414);
}

TEST(HttpServer, MalformedRequestIs400) {
  auto server = start_server(demo_router());
  RawSocket s(server->port());
  ASSERT_TRUE(s.send("GET /hello HTTP/1.1\r\nBad Header Line\r\n\r\n"));
  auto r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
  EXPECT_TRUE(s.wait_closed());
}

TEST(HttpServer, HeaderTimeoutDisconnectsSlowClient) {
  HttpServerOptions o = test_options();
  o.header_timeout = std::chrono::milliseconds(200);
  auto server = start_server(demo_router(), o);
  RawSocket s(server->port());
  ASSERT_TRUE(s.send("GET /hello HTTP/1.1\r\nHost: t\r\n"));  // Never finishes the headers.
  EXPECT_TRUE(s.wait_closed());
  auto r = testing::take_response(s.buffer());
  ASSERT_TRUE(r) << s.buffer();
  EXPECT_EQ(r->status, 408);

  RawSocket silent(server->port());  // Sends nothing at all: closed without a response.
  EXPECT_TRUE(silent.wait_closed());
  EXPECT_TRUE(silent.buffer().empty());
}

TEST(HttpServer, BodyTimeoutAnswers408) {
  HttpServerOptions o = test_options();
  o.body_timeout = std::chrono::milliseconds(200);
  auto server = start_server(demo_router(), o);
  RawSocket s(server->port());
  ASSERT_TRUE(
      s.send("POST /v1/fleet/pools/a/drain HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"));
  EXPECT_TRUE(s.wait_closed());
  auto r = testing::take_response(s.buffer());
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 408);
}

TEST(HttpServer, IdleKeepAliveConnectionIsClosed) {
  HttpServerOptions o = test_options();
  o.idle_timeout = std::chrono::milliseconds(200);
  auto server = start_server(demo_router(), o);
  RawSocket s(server->port());
  ASSERT_TRUE(s.send(simple_get("/hello")));
  auto r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(s.wait_closed());  // Nothing more sent: the server closes the idle connection.
  EXPECT_TRUE(s.buffer().empty());
  EXPECT_TRUE(wait_until([&] { return server->open_connections() == 0; }));
}

// Loops that poll before they sleep (HttpServerOptions::busy_poll) still answer requests that
// come while they poll and after they went to sleep, fire timers, and stop.
TEST(HttpServer, BusyPollingLoopsServeTimeOutAndStop) {
  HttpServerOptions o = test_options();
  o.busy_poll = HttpServerOptions::kMaxBusyPoll;
  o.idle_timeout = std::chrono::milliseconds(200);
  auto server = start_server(demo_router(), o);
  RawSocket s(server->port());
  for (int i = 0; i < 5; ++i) {  // Back to back: each request finds its loop polling.
    ASSERT_TRUE(s.send(simple_get("/hello")));
    auto r = read_response(s);
    ASSERT_TRUE(r) << "request " << i;
    EXPECT_EQ(r->status, 200);
  }
  // Longer than the poll window: the loop is asleep in the kernel when this one comes.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(s.send(simple_get("/hello")));
  auto r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(s.wait_closed());  // The idle timer fired.
  EXPECT_TRUE(wait_until([&] { return server->open_connections() == 0; }));
  server->stop();  // Returns: every polling loop ends.
}

TEST(HttpServerOptions, BusyPollIsBounded) {
  HttpServerOptions o;
  EXPECT_EQ(o.busy_poll.count(), 0);  // Off unless asked for.
  o.busy_poll = HttpServerOptions::kMaxBusyPoll + std::chrono::microseconds(1);
  const Status s = o.validate();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("busy_poll_us"), std::string::npos) << s.error().message();
  o.busy_poll = std::chrono::microseconds(-1);
  EXPECT_FALSE(o.validate().ok());
}

TEST(HttpServer, MaxConnectionsEnforced) {
  HttpServerOptions o = test_options();
  o.max_connections = 2;
  auto server = start_server(demo_router(), o);
  RawSocket a(server->port());
  RawSocket b(server->port());
  for (RawSocket* s : {&a, &b}) {  // A response proves the server accepted the connection.
    ASSERT_TRUE(s->send(simple_get("/hello")));
    ASSERT_TRUE(read_response(*s));
  }
  RawSocket c(server->port());
  ASSERT_TRUE(c.connected());  // The kernel accepts; the server closes it at once.
  EXPECT_TRUE(c.wait_closed());
  EXPECT_TRUE(c.buffer().empty());
  EXPECT_EQ(server->open_connections(), 2);

  a.close();
  ASSERT_TRUE(wait_until([&] { return server->open_connections() == 1; }));
  RawSocket d(server->port());
  ASSERT_TRUE(d.send(simple_get("/hello")));
  auto r = read_response(d);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST(HttpServer, RequestIdIsEchoedOrGenerated) {
  std::string seen_id;
  std::mutex mu;
  Router router;
  ASSERT_TRUE(router
                  .add("GET", "/id",
                       [&](HttpRequest req, ResponseWriter w) {
                         {
                           std::lock_guard lock(mu);
                           seen_id = req.request_id;
                         }
                         w.respond(HttpResponse::text(200, "ok"));
                       })
                  .ok());
  auto server = start_server(std::move(router));
  RawSocket s(server->port());
  ASSERT_TRUE(s.send(simple_get("/id", "X-Request-Id: abc-123\r\n")));
  auto r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->headers.get("X-Request-Id"), "abc-123");
  {
    std::lock_guard lock(mu);
    EXPECT_EQ(seen_id, "abc-123");
  }
  ASSERT_TRUE(s.send(simple_get("/id")));
  r = read_response(s);
  ASSERT_TRUE(r);
  const auto generated = r->headers.get("X-Request-Id");
  ASSERT_TRUE(generated);
  EXPECT_EQ(generated->substr(0, 4), "req-");
}

TEST(HttpServer, AbandonedOrThrowingHandlerGets500) {
  Router router;
  ASSERT_TRUE(router.add("GET", "/drop", [](HttpRequest, ResponseWriter) {}).ok());
  ASSERT_TRUE(
      router
          .add("GET", "/throw",
               [](HttpRequest, ResponseWriter) -> void { throw std::runtime_error("handler bug"); })
          .ok());
  ASSERT_TRUE(router
                  .add("GET", "/bad-header",
                       [](HttpRequest, ResponseWriter w) {
                         HttpResponse bad = HttpResponse::text(200, "x");
                         bad.headers.add("X-Evil", "a\r\nInjected: 1");
                         EXPECT_FALSE(w.respond(bad));  // Rejected; the writer stays usable.
                         EXPECT_FALSE(w.respond(HttpResponse::text(999, "x")));
                         EXPECT_TRUE(w.respond(HttpResponse::text(200, "clean")));
                         EXPECT_FALSE(w.respond(HttpResponse::text(200, "twice")));
                       })
                  .ok());
  auto server = start_server(std::move(router));
  RawSocket s(server->port());
  for (const char* path : {"/drop", "/throw"}) {
    ASSERT_TRUE(s.send(simple_get(path)));
    auto r = read_response(s);
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 500) << path;
  }
  ASSERT_TRUE(s.send(simple_get("/bad-header")));
  auto r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "clean");
  EXPECT_FALSE(r->headers.contains("Injected"));
}

TEST(HttpServer, ExpectContinueGetsInterimResponse) {
  auto server = start_server(demo_router());
  RawSocket s(server->port());
  ASSERT_TRUE(
      s.send("POST /v1/fleet/pools/p/drain HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
             "Expect: 100-continue\r\n\r\n"));
  ASSERT_TRUE(s.read_until("\r\n\r\n"));
  EXPECT_EQ(s.buffer().substr(0, 25), "HTTP/1.1 100 Continue\r\n\r\n");
  s.buffer().erase(0, 25);
  ASSERT_TRUE(s.send("hello"));
  auto r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 202);
  EXPECT_EQ(r->body, "p:hello");
}

TEST(HttpServer, RecordsMetrics) {
  MetricsRegistry registry;
  HttpServerOptions o = test_options();
  o.metrics = &registry;
  o.metrics_labels = {{"server", "test"}};
  auto server = start_server(demo_router(), o);
  {
    RawSocket s(server->port());
    ASSERT_TRUE(s.send(simple_get("/hello") + simple_get("/hello") + simple_get("/missing")));
    for (int i = 0; i < 3; ++i)
      ASSERT_TRUE(read_response(s));
    const std::string text = registry.render_prometheus();
    EXPECT_NE(text.find(R"(spillway_http_connections_open{server="test"} 1)"), std::string::npos)
        << text;
  }
  ASSERT_TRUE(wait_until([&] { return server->open_connections() == 0; }));
  const std::string text = registry.render_prometheus();
  EXPECT_NE(text.find(R"(spillway_http_requests_total{server="test",code="2xx"} 2)"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(spillway_http_requests_total{server="test",code="4xx"} 1)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(spillway_http_request_duration_seconds_count{server="test"} 3)"),
            std::string::npos);
  EXPECT_NE(text.find(R"(spillway_http_connections_open{server="test"} 0)"), std::string::npos);
}

}  // namespace
}  // namespace spillway::net
