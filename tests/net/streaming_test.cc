// Streaming responses: incremental delivery, disconnect detection (on_close), writes after
// close, backpressure, abandoned streams, graceful shutdown, and SSE end to end.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "net/http_server.h"
#include "net/sse.h"

#include "net_test_support.h"

namespace spillway::net {
namespace {

using testing::kHangGuard;
using testing::RawSocket;
using testing::read_response;
using testing::simple_get;
using testing::start_server;
using testing::test_options;
using testing::wait_until;

// Hands each request's writer to the test thread, which then plays the handler's producer.
class WriterMailbox {
 public:
  HttpHandler handler() {
    return [this](HttpRequest, ResponseWriter w) {
      std::lock_guard lock(mu_);
      writers_.push_back(std::move(w));
      cv_.notify_all();
    };
  }
  // Waits for the next writer (bounded by the hang guard).
  std::optional<ResponseWriter> take() {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, kHangGuard, [&] { return !writers_.empty(); })) return std::nullopt;
    ResponseWriter w = std::move(writers_.front());
    writers_.erase(writers_.begin());
    return w;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ResponseWriter> writers_;
};

HttpClientOptions client_options(std::uint16_t port) {
  HttpClientOptions o;
  o.port = port;
  o.io_timeout = kHangGuard;
  o.request_timeout = kHangGuard;
  return o;
}

TEST(Streaming, ChunksReachTheClientIncrementally) {
  WriterMailbox mailbox;
  Router router;
  ASSERT_TRUE(router.add("GET", "/stream", mailbox.handler()).ok());
  auto server = start_server(std::move(router));

  std::promise<void> first_seen;
  std::vector<std::string> pieces;
  auto client_done = std::async(std::launch::async, [&] {
    HttpClient client(client_options(server->port()));
    bool signalled = false;
    return client.stream(
        {.method = "GET", .target = "/stream", .headers = {}, .body = {}},
        [](int status, const HttpHeaders&) { return status == 200; },
        [&](std::string_view piece) {
          pieces.emplace_back(piece);
          if (!signalled && piece.find("first") != std::string_view::npos) {
            signalled = true;
            first_seen.set_value();
          }
          return true;
        });
  });

  auto writer = mailbox.take();
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->start(200, HttpHeaders{{"Content-Type", "text/plain"}}));
  ASSERT_TRUE(writer->write("first"));
  // The second chunk is written only after the client has seen the first: if the server
  // buffered the stream, this would wait forever (the hang guard turns that into a failure).
  ASSERT_EQ(first_seen.get_future().wait_for(kHangGuard), std::future_status::ready);
  ASSERT_TRUE(writer->write("second"));
  ASSERT_TRUE(writer->finish());
  EXPECT_FALSE(writer->write("late"));  // Finished: further writes are refused.

  auto result = client_done.get();
  ASSERT_TRUE(result.ok()) << result.error().to_string();
  EXPECT_EQ(result->status, 200);
  EXPECT_EQ(result->headers.get("Transfer-Encoding"), "chunked");
  std::string all;
  for (const auto& p : pieces)
    all += p;
  EXPECT_EQ(all, "firstsecond");
  EXPECT_GE(pieces.size(), 2u);
}

// A stream started inside the handler call (on the loop thread) and written by another thread
// before the handler returns, as `spillway serve` does with an engine that is quick to produce
// tokens: the chunks must follow the start. (An io_context run by one thread keeps what that
// thread posts aside until the running handler returns, so separately posted calls reached the
// connection as chunks, end, then start: the chunks were dropped and the body never ended.)
TEST(Streaming, ChunksWrittenFromAnotherThreadDuringTheHandlerFollowItsStart) {
  Router router;
  ASSERT_TRUE(router
                  .add("GET", "/stream",
                       [](HttpRequest, ResponseWriter w) {
                         ASSERT_TRUE(w.start(200, HttpHeaders{{"Content-Type", "text/plain"}}));
                         std::thread producer([w]() mutable {
                           EXPECT_TRUE(w.write("one "));
                           EXPECT_TRUE(w.write("two"));
                           EXPECT_TRUE(w.finish());
                         });
                         producer.join();
                         EXPECT_FALSE(w.write(" late"));  // Refused: finished.
                       })
                  .ok());
  auto server = start_server(std::move(router));
  HttpClient client(client_options(server->port()));
  for (int i = 0; i < 3; ++i) {
    auto result = client.request({.method = "GET", .target = "/stream", .headers = {}, .body = {}});
    ASSERT_TRUE(result.ok()) << result.error().to_string();
    EXPECT_EQ(result->status, 200);
    EXPECT_EQ(result->body, "one two");
  }
}

TEST(Streaming, ClientDisconnectFiresOnCloseAndLaterWritesAreHarmless) {
  WriterMailbox mailbox;
  Router router;
  ASSERT_TRUE(router.add("GET", "/stream", mailbox.handler()).ok());
  auto server = start_server(std::move(router));

  RawSocket s(server->port());
  ASSERT_TRUE(s.send(simple_get("/stream")));
  auto writer = mailbox.take();
  ASSERT_TRUE(writer);
  std::promise<void> closed;
  std::atomic<int> close_calls{0};
  writer->on_close([&] {
    if (close_calls.fetch_add(1) == 0) closed.set_value();
  });
  ASSERT_TRUE(writer->start(200, sse_response_headers()));
  ASSERT_TRUE(writer->write(format_sse_data("token")));
  ASSERT_TRUE(s.read_until("data: token"));
  s.close();  // The client goes away mid-stream.

  ASSERT_EQ(closed.get_future().wait_for(kHangGuard), std::future_status::ready);
  EXPECT_TRUE(writer->is_closed());
  for (int i = 0; i < 100; ++i)
    EXPECT_FALSE(writer->write("more"));
  EXPECT_FALSE(writer->finish());
  bool late_callback_ran = false;  // Registering after the close runs the callback at once.
  writer->on_close([&] { late_callback_ran = true; });
  EXPECT_TRUE(late_callback_ran);
  EXPECT_EQ(close_calls.load(), 1);
  EXPECT_TRUE(wait_until([&] { return server->active_requests() == 0; }));
}

TEST(Streaming, DisconnectBeforeAnyResponseFiresOnClose) {
  WriterMailbox mailbox;
  Router router;
  ASSERT_TRUE(router.add("POST", "/generate", mailbox.handler()).ok());
  auto server = start_server(std::move(router));

  RawSocket s(server->port());
  ASSERT_TRUE(s.send("POST /generate HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"));
  auto writer = mailbox.take();
  ASSERT_TRUE(writer);
  std::promise<void> closed;
  writer->on_close([&] { closed.set_value(); });
  s.close();
  ASSERT_EQ(closed.get_future().wait_for(kHangGuard), std::future_status::ready);
  EXPECT_FALSE(writer->respond(HttpResponse::text(200, "too late")));
}

TEST(Streaming, OnCloseDoesNotFireAfterDelivery) {
  WriterMailbox mailbox;
  Router router;
  ASSERT_TRUE(router.add("GET", "/s", mailbox.handler()).ok());
  auto server = start_server(std::move(router));
  RawSocket s(server->port());
  ASSERT_TRUE(s.send(simple_get("/s")));
  auto writer = mailbox.take();
  ASSERT_TRUE(writer);
  std::atomic<bool> fired{false};
  writer->on_close([&] { fired = true; });
  ASSERT_TRUE(writer->start(200, {}));
  ASSERT_TRUE(writer->write("abc"));
  ASSERT_TRUE(writer->finish());
  auto r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "abc");
  ASSERT_TRUE(wait_until([&] { return server->active_requests() == 0; }));  // Delivered.
  s.close();
  ASSERT_TRUE(wait_until([&] { return server->open_connections() == 0; }));
  EXPECT_FALSE(fired.load());
  EXPECT_FALSE(writer->is_closed());
}

TEST(Streaming, SlowReaderOverflowClosesTheConnection) {
  WriterMailbox mailbox;
  Router router;
  ASSERT_TRUE(router.add("GET", "/flood", mailbox.handler()).ok());
  HttpServerOptions o = test_options();
  o.max_pending_write_bytes = 64 * 1024;
  auto server = start_server(std::move(router), o);

  RawSocket s(server->port(), /*receive_buffer_bytes=*/4096);
  ASSERT_TRUE(s.send(simple_get("/flood")));  // Then never reads.
  auto writer = mailbox.take();
  ASSERT_TRUE(writer);
  std::atomic<bool> fired{false};
  writer->on_close([&] { fired = true; });
  ASSERT_TRUE(writer->start(200, {}));
  const std::string chunk(16 * 1024, 'x');
  bool refused = false;
  for (int i = 0; i < 100'000 && !refused; ++i)
    refused = !writer->write(chunk);
  EXPECT_TRUE(refused);
  EXPECT_TRUE(fired.load());
  EXPECT_TRUE(writer->is_closed());
  EXPECT_LE(writer->buffered_bytes(), o.max_pending_write_bytes + chunk.size());
  EXPECT_TRUE(wait_until([&] { return server->open_connections() == 0; }));
}

TEST(Streaming, AbandonedStreamEndsWithoutTheFinalChunk) {
  WriterMailbox mailbox;
  Router router;
  ASSERT_TRUE(router.add("GET", "/s", mailbox.handler()).ok());
  auto server = start_server(std::move(router));
  auto client_done = std::async(std::launch::async, [&] {
    HttpClient client(client_options(server->port()));
    return client.stream({.method = "GET", .target = "/s", .headers = {}, .body = {}}, nullptr,
                         nullptr);
  });
  {
    auto writer = mailbox.take();
    ASSERT_TRUE(writer);
    ASSERT_TRUE(writer->start(200, {}));
    ASSERT_TRUE(writer->write("partial"));
  }  // Dropped without finish().
  auto result = client_done.get();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), ErrorCode::kDataLoss) << result.error().to_string();
}

TEST(Streaming, GracefulShutdownLetsAnInFlightStreamFinish) {
  WriterMailbox mailbox;
  Router router;
  ASSERT_TRUE(router.add("GET", "/stream", mailbox.handler()).ok());
  auto server = start_server(std::move(router));
  const std::uint16_t port = server->port();

  RawSocket idle(port);  // An idle keep-alive connection: closed by stop_accepting.
  ASSERT_TRUE(idle.send(simple_get("/missing")));
  ASSERT_TRUE(read_response(idle));

  RawSocket s(port);
  ASSERT_TRUE(s.send(simple_get("/stream")));
  auto writer = mailbox.take();
  ASSERT_TRUE(writer);
  ASSERT_TRUE(writer->start(200, {}));
  ASSERT_TRUE(writer->write("before "));
  ASSERT_TRUE(s.read_until("before "));

  server->stop_accepting();
  EXPECT_TRUE(idle.wait_closed());
  EXPECT_TRUE(wait_until([&] { return server->active_requests() == 1; }));
  RawSocket late(port);  // The listener is closed: refused, or closed without an answer.
  if (late.connected()) {
    late.send(simple_get("/stream"));
    EXPECT_TRUE(late.wait_closed());
    EXPECT_TRUE(late.buffer().empty());
  }

  auto drained = std::async(std::launch::async, [&] { return server->drain(kHangGuard); });
  ASSERT_TRUE(writer->write("after"));
  ASSERT_TRUE(writer->finish());
  EXPECT_TRUE(drained.get());
  auto r = read_response(s);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "before after");
  EXPECT_TRUE(s.wait_closed());  // Draining: the connection closes after the response.
  server->stop();
}

TEST(Streaming, StopClosesInFlightStreamsAndWritersOutliveTheServer) {
  WriterMailbox mailbox;
  Router router;
  ASSERT_TRUE(router.add("GET", "/stream", mailbox.handler()).ok());
  auto server = start_server(std::move(router));
  RawSocket s(server->port());
  ASSERT_TRUE(s.send(simple_get("/stream")));
  auto writer = mailbox.take();
  ASSERT_TRUE(writer);
  std::atomic<bool> fired{false};
  writer->on_close([&] { fired = true; });
  ASSERT_TRUE(writer->start(200, {}));

  EXPECT_FALSE(server->drain(std::chrono::milliseconds(50)));  // The stream never finishes.
  server->stop();
  EXPECT_TRUE(fired.load());
  EXPECT_TRUE(s.wait_closed());
  server.reset();  // Destroy the server; the writer lives on.
  EXPECT_TRUE(writer->is_closed());
  EXPECT_FALSE(writer->write("after the server is gone"));
  EXPECT_FALSE(writer->finish());
}

TEST(Streaming, ServerSentEventsEndToEnd) {
  std::mutex mu;
  std::vector<std::thread> producers;  // The handler completes its writer on another thread.
  Router router;
  ASSERT_TRUE(
      router
          .add("POST", "/v1/events",
               [&](HttpRequest, ResponseWriter w) {
                 std::lock_guard lock(mu);
                 producers.emplace_back([w]() mutable {
                   w.start(200, sse_response_headers());
                   for (int i = 0; i < 3; ++i)
                     w.write(format_sse_data("{\"n\":" + std::to_string(i) + "}"));
                   w.write(format_sse_event(
                       {.data = "line1\nline2", .event = "multi", .id = {}, .retry_ms = {}}));
                   w.write(format_sse_data("[DONE]"));
                   w.finish();
                 });
               })
          .ok());
  auto server = start_server(std::move(router));
  HttpClient client(client_options(server->port()));
  std::string body;
  auto result =
      client.stream({.method = "POST", .target = "/v1/events", .headers = {}, .body = "{}"},
                    nullptr, [&](std::string_view piece) {
                      body += piece;
                      return true;
                    });
  {
    std::lock_guard lock(mu);
    for (auto& t : producers)
      t.join();
  }
  ASSERT_TRUE(result.ok()) << result.error().to_string();
  EXPECT_EQ(result->headers.get("Content-Type"), "text/event-stream");
  EXPECT_EQ(result->headers.get("X-Accel-Buffering"), "no");
  EXPECT_EQ(body,
            "data: {\"n\":0}\n\ndata: {\"n\":1}\n\ndata: {\"n\":2}\n\n"
            "event: multi\ndata: line1\ndata: line2\n\ndata: [DONE]\n\n");
}

}  // namespace
}  // namespace spillway::net
