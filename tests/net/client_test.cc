// HttpClient against HttpServer and against raw listeners that misbehave on purpose.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include "net/http_client.h"
#include "net/http_server.h"

#include "net_test_support.h"

namespace spillway::net {
namespace {

using testing::kHangGuard;
using testing::RawListener;
using testing::start_server;
using testing::test_options;
using testing::wait_until;

HttpClientOptions options_for(std::uint16_t port) {
  HttpClientOptions o;
  o.port = port;
  o.connect_timeout = kHangGuard;
  o.io_timeout = kHangGuard;
  o.request_timeout = kHangGuard;
  return o;
}

Router echo_router() {
  Router r;
  EXPECT_TRUE(r.add("GET", "/peer", [](HttpRequest req, ResponseWriter w) {
                 w.respond(HttpResponse::text(200, req.remote_address));
               }).ok());
  EXPECT_TRUE(r.add("POST", "/echo", [](HttpRequest req, ResponseWriter w) {
                 HttpResponse resp = HttpResponse::text(200, req.body);
                 resp.headers.add("X-Method", req.method);
                 resp.headers.add("X-Host", std::string(req.headers.get("Host").value_or("")));
                 w.respond(std::move(resp));
               }).ok());
  EXPECT_TRUE(r.add("GET", "/big", [](HttpRequest, ResponseWriter w) {
                 w.respond(HttpResponse::text(200, std::string(100'000, 'b')));
               }).ok());
  return r;
}

TEST(HttpClient, RequestAndKeepAlive) {
  auto server = start_server(echo_router());
  HttpClient client(options_for(server->port()));
  auto echo = client.request({.method = "POST", .target = "/echo", .headers = {}, .body = "ping"});
  ASSERT_TRUE(echo.ok()) << echo.error().to_string();
  EXPECT_EQ(echo->status, 200);
  EXPECT_EQ(echo->body, "ping");
  EXPECT_EQ(echo->headers.get("x-method"), "POST");
  EXPECT_EQ(echo->headers.get("X-Host"), "127.0.0.1:" + std::to_string(server->port()));

  auto first = client.request({.method = "GET", .target = "/peer", .headers = {}, .body = {}});
  auto second = client.request({.method = "GET", .target = "/peer", .headers = {}, .body = {}});
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->body, second->body);  // Same client port: the connection was reused.
  EXPECT_EQ(server->open_connections(), 1);
}

TEST(HttpClient, RetriesIdempotentRequestOnAConnectionTheServerClosed) {
  HttpServerOptions o = test_options();
  o.idle_timeout = std::chrono::milliseconds(50);
  auto server = start_server(echo_router(), o);
  HttpClient client(options_for(server->port()));
  auto first = client.request({.method = "GET", .target = "/peer", .headers = {}, .body = {}});
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(wait_until([&] { return server->open_connections() == 0; }));  // Idle-closed.
  auto second = client.request({.method = "GET", .target = "/peer", .headers = {}, .body = {}});
  ASSERT_TRUE(second.ok()) << second.error().to_string();
  EXPECT_NE(first->body, second->body);  // A fresh connection.
}

TEST(HttpClient, ServerThatNeverAnswersTimesOut) {
  RawListener listener;  // Accepts (via the kernel backlog) but never reads or writes.
  HttpClientOptions o = options_for(listener.port());
  o.io_timeout = std::chrono::milliseconds(200);
  HttpClient client(o);
  auto r = client.request({.method = "GET", .target = "/ready", .headers = {}, .body = {}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDeadlineExceeded) << r.error().to_string();

  HttpClientOptions overall = options_for(listener.port());
  overall.request_timeout = std::chrono::milliseconds(200);  // The whole call's bound.
  HttpClient client2(overall);
  auto r2 = client2.stream({.method = "GET", .target = "/s", .headers = {}, .body = {}}, nullptr,
                           nullptr);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.error().code(), ErrorCode::kDeadlineExceeded);
  EXPECT_NE(r2.error().message().find("request_timeout"), std::string::npos);
}

TEST(HttpClient, HandlerThatNeverRespondsTimesOut) {
  std::vector<ResponseWriter> held;  // Kept, never completed, until the server stops.
  std::mutex mu;
  Router router;
  ASSERT_TRUE(router
                  .add("GET", "/hang",
                       [&](HttpRequest, ResponseWriter w) {
                         std::lock_guard lock(mu);
                         held.push_back(std::move(w));
                       })
                  .ok());
  auto server = start_server(std::move(router));
  HttpClientOptions o = options_for(server->port());
  o.io_timeout = std::chrono::milliseconds(200);
  HttpClient client(o);
  auto r = client.request({.method = "GET", .target = "/hang", .headers = {}, .body = {}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDeadlineExceeded);
  server->stop();
}

TEST(HttpClient, ConnectionRefusedIsUnavailable) {
  std::uint16_t port = 0;
  {
    RawListener listener;
    port = listener.port();
  }  // Closed: nothing listens there now.
  HttpClient client(options_for(port));
  auto r = client.request({});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable) << r.error().to_string();
}

TEST(HttpClient, ResponseOverTheLimitIsRejected) {
  auto server = start_server(echo_router());
  HttpClientOptions o = options_for(server->port());
  o.max_body_bytes = 1000;
  HttpClient client(o);
  auto r = client.request({.method = "GET", .target = "/big", .headers = {}, .body = {}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kPayloadTooLarge);
  auto ok = client.request({.method = "POST", .target = "/echo", .headers = {}, .body = "x"});
  EXPECT_TRUE(ok.ok());  // The client recovers on a fresh connection.
}

TEST(HttpClient, StreamCallbacksCanAbort) {
  auto server = start_server(echo_router());
  HttpClient client(options_for(server->port()));
  std::size_t seen = 0;
  auto r = client.stream({.method = "GET", .target = "/big", .headers = {}, .body = {}}, nullptr,
                         [&](std::string_view piece) {
                           seen += piece.size();
                           return false;
                         });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kCancelled);
  EXPECT_GT(seen, 0u);
  auto head_abort = client.stream(
      {.method = "GET", .target = "/big", .headers = {}, .body = {}},
      [](int, const HttpHeaders&) { return false; }, nullptr);
  EXPECT_EQ(head_abort.error().code(), ErrorCode::kCancelled);
}

TEST(HttpClient, TruncatedResponseIsDataLoss) {
  RawListener listener;
  std::thread server([&] {
    const int fd = listener.accept_one();
    char buf[4096];
    (void)::recv(fd, buf, sizeof buf, 0);
    const std::string partial = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-this";
    (void)::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL);
    ::close(fd);
  });
  HttpClient client(options_for(listener.port()));
  auto r = client.request({});
  server.join();
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kDataLoss) << r.error().to_string();
}

TEST(HttpClient, RejectsInvalidRequests) {
  HttpClient client(options_for(1));
  EXPECT_EQ(
      client.request({.method = "G T", .target = "/", .headers = {}, .body = {}}).error().code(),
      ErrorCode::kInvalidArgument);
  EXPECT_EQ(client.request({.method = "GET", .target = "no-slash", .headers = {}, .body = {}})
                .error()
                .code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(
      client.request({.method = "GET", .target = "/", .headers = {{"X-Bad", "a\r\nb"}}, .body = {}})
          .error()
          .code(),
      ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace spillway::net
