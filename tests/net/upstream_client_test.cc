// UpstreamClient (coroutines on an event loop) against HttpServer and against raw listeners that
// misbehave on purpose.
#include "net/upstream_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include "net/http_server.h"

#include "net_test_support.h"

namespace spillway::net {
namespace {

namespace asio = boost::asio;
using testing::kHangGuard;
using testing::RawListener;
using testing::start_server;

UpstreamClientOptions guarded_options() {
  UpstreamClientOptions o;
  o.connect_timeout = kHangGuard;
  o.io_timeout = kHangGuard;
  o.request_timeout = kHangGuard;
  return o;
}

// What one call delivered.
struct Outcome {
  Result<HttpClientResponse> result = make_error(ErrorCode::kInternal, "not run");
  int head_status = 0;
  std::string body;
  int pieces = 0;
  bool sent_now = false;  // call_sent_now: send_now() wrote the request.
};

// An event loop on its own thread, as an HttpServer I/O thread would be.
class Loop {
 public:
  Loop() : strand_(asio::make_strand(ioc_)), work_(asio::make_work_guard(ioc_)) {
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~Loop() {
    work_.reset();
    ioc_.stop();
    thread_.join();
  }
  [[nodiscard]] asio::any_io_executor executor() const { return strand_; }

  // Runs one call to completion on the loop.
  Outcome call(UpstreamClient& client, int port, HttpClientRequest request,
               std::shared_ptr<UpstreamCancel> cancel = nullptr,
               std::function<bool()> keep_reading = {}) {
    return run_call(client, port, std::move(request), std::move(cancel), std::move(keep_reading),
                    false);
  }

  // The same, with the request written by send_now() first, as the gateway does, then
  // stream() given what it wrote.
  Outcome call_sent_now(UpstreamClient& client, int port, HttpClientRequest request) {
    return run_call(client, port, std::move(request), nullptr, {}, true);
  }

 private:
  Outcome run_call(UpstreamClient& client, int port, HttpClientRequest request,
                   std::shared_ptr<UpstreamCancel> cancel, std::function<bool()> keep_reading,
                   bool send_first) {
    auto outcome = std::make_shared<Outcome>();
    auto run = [this, &client, port, request = std::move(request), cancel, outcome, keep_reading,
                send_first]() -> asio::awaitable<void> {
      const UpstreamClient::HeadCallback on_head = [&](int status, const HttpHeaders&) {
        outcome->head_status = status;
        return true;
      };
      const UpstreamClient::BodyCallback on_body = [&](std::string_view piece) {
        outcome->body.append(piece);
        ++outcome->pieces;
        return !keep_reading || keep_reading() ? UpstreamClient::Body::kContinue
                                               : UpstreamClient::Body::kStop;
      };
      if (!send_first) {
        outcome->result =
            co_await client.stream("127.0.0.1", port, request, on_head, on_body, {}, cancel);
        co_return;
      }
      const Result<UpstreamRequest> prepared = UpstreamRequest::from(request);
      EXPECT_TRUE(prepared.ok());
      UpstreamClient::Sent sent = client.send_now("127.0.0.1", port, *prepared, strand_);
      outcome->sent_now = static_cast<bool>(sent);
      outcome->result = co_await client.stream("127.0.0.1", port, *prepared, on_head, on_body, {},
                                               cancel, std::move(sent));
    };
    auto done = asio::co_spawn(strand_, run(), asio::use_future);
    EXPECT_EQ(done.wait_for(2 * kHangGuard), std::future_status::ready);
    done.get();
    return std::move(*outcome);
  }

  asio::io_context ioc_{1};
  asio::any_io_executor strand_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

HttpClientRequest post(std::string target, std::string body) {
  HttpClientRequest r;
  r.method = "POST";
  r.target = std::move(target);
  r.body = std::move(body);
  return r;
}

Router counting_router(std::atomic<int>* connections_seen) {
  Router r;
  EXPECT_TRUE(r.add("POST", "/echo", [connections_seen](HttpRequest req, ResponseWriter w) {
                 if (connections_seen != nullptr) ++*connections_seen;
                 HttpResponse resp = HttpResponse::text(200, req.body);
                 resp.headers.add("X-Peer", req.remote_address);
                 w.respond(std::move(resp));
               }).ok());
  EXPECT_TRUE(r.add("POST", "/stream", [](HttpRequest, ResponseWriter w) {
                 w.start(200, HttpHeaders{});
                 for (int i = 0; i < 5; ++i)
                   w.write("chunk" + std::to_string(i) + ";");
                 w.finish();
               }).ok());
  return r;
}

TEST(UpstreamClient, RelaysAnswersAndReusesTheConnection) {
  auto server = start_server(counting_router(nullptr));
  UpstreamClient client(guarded_options());
  Loop loop;
  std::vector<std::string> peers;
  for (int i = 0; i < 3; ++i) {
    Outcome o = loop.call(client, server->port(), post("/echo", "hello " + std::to_string(i)));
    ASSERT_TRUE(o.result.ok()) << o.result.error().to_string();
    EXPECT_EQ(o.result->status, 200);
    EXPECT_EQ(o.head_status, 200);
    EXPECT_EQ(o.body, "hello " + std::to_string(i));
    peers.push_back(std::string(o.result->headers.get("X-Peer").value_or("")));
  }
  // One kept-alive connection (the same client port) served all three calls.
  EXPECT_FALSE(peers[0].empty());
  EXPECT_EQ(peers[1], peers[0]);
  EXPECT_EQ(peers[2], peers[0]);
  EXPECT_EQ(server->open_connections(), 1);
}

TEST(UpstreamClient, KeepsOnlyTheResponseFieldsAskedFor) {
  auto server = start_server(counting_router(nullptr));
  UpstreamClientOptions options = guarded_options();
  options.response_fields = {"x-peer", "Retry-After"};  // Any case; one never sent.
  ASSERT_TRUE(options.validate().ok());
  UpstreamClient client(options);
  Loop loop;
  Outcome o = loop.call(client, server->port(), post("/echo", "hi"));
  ASSERT_TRUE(o.result.ok()) << o.result.error().to_string();
  EXPECT_EQ(o.body, "hi");  // Framing still followed: Content-Length was parsed, not kept.
  ASSERT_EQ(o.result->headers.size(), 1u);
  EXPECT_TRUE(o.result->headers.contains("X-Peer"));

  options.response_fields = {"Bad Name"};
  EXPECT_EQ(options.validate().code(), ErrorCode::kInvalidArgument);
  options.response_fields.assign(65, "X-A");
  EXPECT_EQ(options.validate().code(), ErrorCode::kInvalidArgument);
}

// A piece answered with kWait makes the call await on_wait before it reads on; on_wait's
// false stops it (kCancelled).
TEST(UpstreamClient, BodyWaitIsAwaitedAndItsFalseStopsTheCall) {
  auto server = start_server(counting_router(nullptr));
  UpstreamClient client(guarded_options());
  Loop loop;
  for (const bool go_on : {true, false}) {
    auto waits = std::make_shared<int>(0);
    auto body = std::make_shared<std::string>();
    auto result =
        std::make_shared<Result<HttpClientResponse>>(make_error(ErrorCode::kInternal, "not run"));
    auto run = [&client, port = server->port(), waits, body, result,
                go_on]() -> asio::awaitable<void> {
      const UpstreamClient::BodyCallback on_body = [&](std::string_view piece) {
        body->append(piece);
        return UpstreamClient::Body::kWait;
      };
      const UpstreamClient::WaitCallback on_wait = [&]() -> asio::awaitable<bool> {
        ++*waits;
        asio::steady_timer timer(co_await asio::this_coro::executor);
        timer.expires_after(std::chrono::milliseconds(1));
        co_await timer.async_wait(asio::use_awaitable);
        co_return go_on;
      };
      *result = co_await client.stream("127.0.0.1", port, post("/stream", ""), {}, on_body, on_wait,
                                       nullptr);
    };
    auto done = asio::co_spawn(loop.executor(), run(), asio::use_future);
    ASSERT_EQ(done.wait_for(2 * kHangGuard), std::future_status::ready);
    done.get();
    EXPECT_GE(*waits, 1);
    if (go_on) {
      ASSERT_TRUE(result->ok()) << result->error().to_string();
      EXPECT_EQ(*body, "chunk0;chunk1;chunk2;chunk3;chunk4;");
    } else {
      ASSERT_FALSE(result->ok());
      EXPECT_EQ(result->error().code(), ErrorCode::kCancelled);
      EXPECT_EQ(*waits, 1);  // Nothing is read after a wait said stop.
    }
  }
}

TEST(UpstreamClient, StreamsTheBodyAsItArrives) {
  auto server = start_server(counting_router(nullptr));
  UpstreamClient client(guarded_options());
  Loop loop;
  Outcome o = loop.call(client, server->port(), post("/stream", ""));
  ASSERT_TRUE(o.result.ok()) << o.result.error().to_string();
  EXPECT_EQ(o.body, "chunk0;chunk1;chunk2;chunk3;chunk4;");
  EXPECT_GE(o.pieces, 1);
  EXPECT_TRUE(o.result->body.empty());
}

// Reads from `fd` until `size` bytes arrived (or the peer stops sending).
std::string recv_exactly(int fd, std::size_t size) {
  std::string got;
  char buf[4096];
  while (got.size() < size) {
    const ssize_t n = ::recv(fd, buf, std::min(sizeof buf, size - got.size()), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  return got;
}

TEST(UpstreamClient, SendsTheRequestAsHttp11WithFramingItSetsItself) {
  RawListener listener;
  const std::string host = "127.0.0.1:" + std::to_string(listener.port());
  // The caller's framing headers are dropped and replaced; Host is added unless given, first
  // after the request line (as RFC 9112 recommends); a body (or a POST) gets Content-Length, a
  // GET without a body none.
  const std::string first =
      "POST /x?q=1 HTTP/1.1\r\nHost: " + host + "\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello";
  const std::string second = "GET /y HTTP/1.1\r\nhost: example\r\nX-B: two words\r\n\r\n";
  const std::string empty_post =
      "POST /z HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 0\r\n\r\n";
  std::vector<std::string> seen;
  std::thread upstream([&] {
    const int fd = listener.accept_one();
    for (const std::string* expected : {&first, &second, &empty_post}) {
      seen.push_back(recv_exactly(fd, expected->size()));
      const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      (void)::send(fd, ok.data(), ok.size(), MSG_NOSIGNAL);
    }
    ::close(fd);
  });
  UpstreamClient client(guarded_options());
  Loop loop;
  HttpClientRequest a = post("/x?q=1", "hello");
  a.headers.add("X-A", "1");
  a.headers.add("Content-Length", "99");
  a.headers.add("Transfer-Encoding", "chunked");
  HttpClientRequest b;
  b.method = "GET";
  b.target = "/y";
  b.headers.add("host", "example");
  b.headers.add("X-B", "two words");
  for (HttpClientRequest* r : {&a, &b}) {
    Outcome o = loop.call(client, listener.port(), *r);
    ASSERT_TRUE(o.result.ok()) << o.result.error().to_string();
    EXPECT_EQ(o.body, "ok");
  }
  Outcome c = loop.call(client, listener.port(), post("/z", ""));
  ASSERT_TRUE(c.result.ok()) << c.result.error().to_string();
  upstream.join();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0], first);
  EXPECT_EQ(seen[1], second);
  EXPECT_EQ(seen[2], empty_post);
}

// The body bytes that come with the head reach the caller at once, whatever the framing: the
// upstream sends the rest only once the caller has seen them (a stream's first event, say).
TEST(UpstreamClient, BodyBytesThatCameWithTheHeadAreNotHeldBack) {
  RawListener listener;
  std::atomic<bool> first_seen{false};
  std::vector<bool> waited_ok;
  std::thread upstream([&] {
    const int fd = listener.accept_one();
    char buf[4096];
    const std::pair<std::string, std::string> answers[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nfirst", "second"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nfirst\r\n",
         "6\r\nsecond\r\n0\r\n\r\n"}};
    for (const auto& [head_and_first, rest] : answers) {
      (void)::recv(fd, buf, sizeof buf, 0);
      first_seen = false;
      (void)::send(fd, head_and_first.data(), head_and_first.size(), MSG_NOSIGNAL);
      waited_ok.push_back(testing::wait_until([&] { return first_seen.load(); }));
      (void)::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
    }
    ::close(fd);
  });
  UpstreamClient client(guarded_options());
  Loop loop;
  for (int i = 0; i < 2; ++i) {
    Outcome o = loop.call(client, listener.port(), post("/x", "1"), nullptr, [&] {
      first_seen = true;
      return true;
    });
    ASSERT_TRUE(o.result.ok()) << o.result.error().to_string();
    EXPECT_EQ(o.body, "firstsecond");
  }
  upstream.join();
  EXPECT_EQ(waited_ok, std::vector<bool>({true, true}));
}

// An upstream that answers "first" on its first connection and then closes it (while the
// client keeps it idle), then answers "second" on the next connection: the retry. What that
// retry's first read got goes to `retry_bytes`.
std::thread close_after_first_answer(RawListener& listener, std::atomic<int>& retry_bytes) {
  return std::thread([&listener, &retry_bytes] {
    const int first = listener.accept_one();
    char buf[4096];
    (void)::recv(first, buf, sizeof buf, 0);
    const std::string ok = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst";
    (void)::send(first, ok.data(), ok.size(), MSG_NOSIGNAL);
    ::close(first);
    const int second = listener.accept_one();
    retry_bytes = static_cast<int>(::recv(second, buf, sizeof buf, 0));
    const std::string again = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond";
    (void)::send(second, again.data(), again.size(), MSG_NOSIGNAL);
    ::close(second);
  });
}

TEST(UpstreamClient, ConnectionClosedWhileIdleIsReplacedTransparently) {
  RawListener listener;
  std::atomic<int> retry_bytes{0};
  std::thread upstream = close_after_first_answer(listener, retry_bytes);
  UpstreamClient client(guarded_options());
  Loop loop;
  Outcome a = loop.call(client, listener.port(), post("/x", "1"));
  ASSERT_TRUE(a.result.ok()) << a.result.error().to_string();
  EXPECT_EQ(a.body, "first");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // Let the close arrive.
  Outcome b = loop.call(client, listener.port(), post("/x", "2"));
  ASSERT_TRUE(b.result.ok()) << b.result.error().to_string();
  EXPECT_EQ(b.body, "second");
  upstream.join();
}

// send_now writes only on an idle kept-alive connection of the loop; stream() then reads the
// answer of what it wrote (the server sees each request once, on the one connection).
TEST(UpstreamClient, SendNowWritesOnAnIdleConnectionAndStreamReadsItsAnswer) {
  std::atomic<int> requests{0};
  auto server = start_server(counting_router(&requests));
  UpstreamClient client(guarded_options());
  Loop loop;
  Outcome first = loop.call_sent_now(client, server->port(), post("/echo", "one"));
  EXPECT_FALSE(first.sent_now);  // No connection yet: stream() connected and sent.
  ASSERT_TRUE(first.result.ok()) << first.result.error().to_string();
  EXPECT_EQ(first.body, "one");
  const std::string peer(first.result->headers.get("X-Peer").value_or(""));
  for (int i = 0; i < 3; ++i) {
    const std::string body = "again " + std::to_string(i);
    Outcome o = loop.call_sent_now(client, server->port(), post("/echo", body));
    EXPECT_TRUE(o.sent_now) << i;
    ASSERT_TRUE(o.result.ok()) << o.result.error().to_string();
    EXPECT_EQ(o.result->status, 200);
    EXPECT_EQ(o.head_status, 200);
    EXPECT_EQ(o.body, body);
    EXPECT_EQ(o.result->headers.get("X-Peer").value_or(""), peer);  // The same connection.
  }
  EXPECT_EQ(requests.load(), 4);
  EXPECT_EQ(server->open_connections(), 1);

  // Bad arguments write nothing; stream() reports them.
  const Result<UpstreamRequest> prepared = UpstreamRequest::from(post("/echo", "x"));
  ASSERT_TRUE(prepared.ok());
  EXPECT_FALSE(client.send_now("not-an-ip", server->port(), *prepared, loop.executor()));
  EXPECT_FALSE(client.send_now("127.0.0.1", 0, *prepared, loop.executor()));
}

// A request send_now wrote on a connection the upstream had closed while it was idle is sent
// again on a fresh connection, as any call on a reused connection is.
TEST(UpstreamClient, SendNowOnAConnectionClosedWhileIdleIsRetriedOnAFreshOne) {
  RawListener listener;
  std::atomic<int> second_got{0};
  std::thread upstream = close_after_first_answer(listener, second_got);
  UpstreamClient client(guarded_options());
  Loop loop;
  Outcome a = loop.call(client, listener.port(), post("/x", "1"));
  ASSERT_TRUE(a.result.ok()) << a.result.error().to_string();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // Let the close arrive.
  Outcome b = loop.call_sent_now(client, listener.port(), post("/x", "2"));
  ASSERT_TRUE(b.result.ok()) << b.result.error().to_string();
  EXPECT_EQ(b.body, "second");
  upstream.join();
  EXPECT_GT(second_got.load(), 0);  // The whole request went out again.
}

TEST(UpstreamClient, SilentUpstreamTimesOutAndRefusedConnectIsUnavailable) {
  RawListener listener;
  std::atomic<int> held{-1};
  std::thread upstream([&] { held = listener.accept_one(); });  // Accepts, never answers.
  UpstreamClientOptions o = guarded_options();
  o.io_timeout = std::chrono::milliseconds(100);
  UpstreamClient client(o);
  Loop loop;
  Outcome silent = loop.call(client, listener.port(), post("/x", "1"));
  ASSERT_FALSE(silent.result.ok());
  EXPECT_EQ(silent.result.error().code(), ErrorCode::kDeadlineExceeded)
      << silent.result.error().to_string();
  upstream.join();
  ::close(held.load());

  const int port = listener.port();
  listener.close();
  Outcome refused = loop.call(client, port, post("/x", "1"));
  ASSERT_FALSE(refused.result.ok());
  EXPECT_EQ(refused.result.error().code(), ErrorCode::kUnavailable)
      << refused.result.error().to_string();
}

TEST(UpstreamClient, CancelClosesTheConnectionAtOnce) {
  RawListener listener;
  std::promise<bool> upstream_saw_close;
  std::thread upstream([&] {
    const int fd = listener.accept_one();
    char buf[4096];
    (void)::recv(fd, buf, sizeof buf, 0);
    // Never answers; reports whether the client closed the connection.
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    upstream_saw_close.set_value(n == 0);
    ::close(fd);
  });
  UpstreamClient client(guarded_options());
  Loop loop;
  auto cancel = std::make_shared<UpstreamCancel>(loop.executor());
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    cancel->cancel();  // From another thread, as a client's on_close would.
  });
  Outcome o = loop.call(client, listener.port(), post("/x", "1"), cancel);
  canceller.join();
  ASSERT_FALSE(o.result.ok());
  EXPECT_EQ(o.result.error().code(), ErrorCode::kCancelled);
  auto saw = upstream_saw_close.get_future();
  ASSERT_EQ(saw.wait_for(kHangGuard), std::future_status::ready);
  EXPECT_TRUE(saw.get());
  upstream.join();
}

TEST(UpstreamClient, BodiesLargerThanAPieceChunkedTrailersHeadAndCloseFraming) {
  RawListener listener;
  std::string big(40000, '\0');
  for (std::size_t i = 0; i < big.size(); ++i)
    big[i] = static_cast<char>('a' + i % 26);
  const std::string chunk_a(12000, 'x');
  const std::string chunk_b(9000, 'y');
  std::thread upstream([&] {
    char buf[4096];
    const auto answer = [&](int fd, const std::string& bytes) {
      (void)::recv(fd, buf, sizeof buf, 0);
      (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    };
    // One kept-alive connection for the first three answers; the third closes it.
    const int first = listener.accept_one();
    answer(first, "HTTP/1.1 201 Created\r\nX-One: a\r\nx-two:  b \r\nContent-Length: " +
                      std::to_string(big.size()) + "\r\n\r\n" + big);
    answer(first, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2ee0\r\n" + chunk_a +
                      "\r\n2328\r\n" + chunk_b + "\r\n0\r\nX-Trailer: t\r\n\r\n");
    answer(first, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
    ::close(first);
    // A body framed by the close of the connection.
    const int second = listener.accept_one();
    answer(second, "HTTP/1.1 200 OK\r\n\r\nuntil the end");
    ::close(second);
    // HEAD (a Content-Length but no body), then the same connection again.
    const int third = listener.accept_one();
    answer(third, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n");
    answer(third, "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlast");
    ::close(third);
  });
  UpstreamClient client(guarded_options());
  Loop loop;
  Outcome a = loop.call(client, listener.port(), post("/x", "1"));
  ASSERT_TRUE(a.result.ok()) << a.result.error().to_string();
  EXPECT_EQ(a.result->status, 201);
  EXPECT_EQ(a.head_status, 201);
  EXPECT_EQ(a.result->headers.get("X-One"), std::optional<std::string_view>("a"));
  EXPECT_EQ(a.result->headers.get("X-Two"), std::optional<std::string_view>("b"));
  EXPECT_EQ(a.body.size(), big.size());
  EXPECT_TRUE(a.body == big);
  EXPECT_GE(a.pieces, 3);  // 16 KiB pieces at most.

  Outcome b = loop.call(client, listener.port(), post("/x", "2"));
  ASSERT_TRUE(b.result.ok()) << b.result.error().to_string();
  EXPECT_TRUE(b.body == chunk_a + chunk_b);
  EXPECT_EQ(b.result->headers.get("Transfer-Encoding"), std::optional<std::string_view>("chunked"));
  EXPECT_FALSE(b.result->headers.contains("X-Trailer"));  // The head's fields only.

  Outcome c = loop.call(client, listener.port(), post("/x", "3"));
  ASSERT_TRUE(c.result.ok()) << c.result.error().to_string();
  EXPECT_EQ(c.body, "ok");

  Outcome d = loop.call(client, listener.port(), post("/x", "4"));
  ASSERT_TRUE(d.result.ok()) << d.result.error().to_string();
  EXPECT_EQ(d.body, "until the end");

  HttpClientRequest head;
  head.method = "HEAD";
  head.target = "/x";
  Outcome e = loop.call(client, listener.port(), head);
  ASSERT_TRUE(e.result.ok()) << e.result.error().to_string();
  EXPECT_EQ(e.result->status, 200);
  EXPECT_TRUE(e.body.empty());
  Outcome f = loop.call(client, listener.port(), post("/x", "5"));
  ASSERT_TRUE(f.result.ok()) << f.result.error().to_string();
  EXPECT_EQ(f.body, "last");
  upstream.join();
}

// Interim answers are skipped (within a bound); a protocol switch, a head past the limit and a
// malformed head are typed errors.
TEST(UpstreamClient, InterimAnswersAreSkippedAndBadHeadsAreTypedErrors) {
  std::string too_many;
  for (int i = 0; i < 9; ++i)
    too_many += "HTTP/1.1 100 Continue\r\n\r\n";
  const std::vector<std::string> answers = {
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
      too_many + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX-Big: " + std::string(2000, 'b') + "\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nok",
  };
  RawListener listener;
  std::thread upstream([&] {
    char buf[4096];
    for (const std::string& answer : answers) {
      const int fd = listener.accept_one();
      (void)::recv(fd, buf, sizeof buf, 0);
      (void)::send(fd, answer.data(), answer.size(), MSG_NOSIGNAL);
      ::close(fd);
    }
  });
  UpstreamClientOptions options = guarded_options();
  options.max_header_bytes = 1024;
  UpstreamClient client(options);
  Loop loop;
  std::vector<Outcome> outcomes;
  for (std::size_t i = 0; i < answers.size(); ++i)
    outcomes.push_back(loop.call(client, listener.port(), post("/x", "1")));
  upstream.join();
  ASSERT_TRUE(outcomes[0].result.ok()) << outcomes[0].result.error().to_string();
  EXPECT_EQ(outcomes[0].result->status, 200);
  EXPECT_EQ(outcomes[0].head_status, 200);  // on_head sees the final answer only.
  EXPECT_EQ(outcomes[0].body, "ok");
  const ErrorCode expected[] = {ErrorCode::kDataLoss, ErrorCode::kDataLoss,
                                ErrorCode::kPayloadTooLarge, ErrorCode::kDataLoss};
  for (std::size_t i = 1; i < outcomes.size(); ++i) {
    ASSERT_FALSE(outcomes[i].result.ok()) << i;
    EXPECT_EQ(outcomes[i].result.error().code(), expected[i - 1])
        << i << ": " << outcomes[i].result.error().to_string();
    EXPECT_EQ(outcomes[i].head_status, 0) << i;
  }
}

TEST(UpstreamRequest, WritesTheHeadAsItIsBuiltAndRefusesWhatCouldSplitIt) {
  auto r = UpstreamRequest::make("POST", "/v1/chat/completions");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_TRUE(r->add("Content-Type", "application/json").ok());
  EXPECT_TRUE(r->add("Content-Length", "99").ok());  // Ignored: the framing is the body's.
  EXPECT_TRUE(r->add("transfer-encoding", "chunked").ok());
  // A value or name that would end the field or the head is refused, and nothing of it sent.
  EXPECT_EQ(r->add("X-Request-Id", "a\r\nX-Evil: 1").code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(r->add("X Bad", "1").code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(r->add("", "1").code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(r->has_host());
  r->finish(R"({"a":1})");
  EXPECT_EQ(r->line(), "POST /v1/chat/completions HTTP/1.1\r\n");
  EXPECT_EQ(r->rest(), "Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
  EXPECT_FALSE(r->is_head());

  // Fields checked once, then written into many requests as they are.
  UpstreamRequest::Fields common;
  EXPECT_TRUE(common.add("Authorization", "Bearer k").ok());
  EXPECT_EQ(common.add("X-Bad", "a\nb").code(), ErrorCode::kInvalidArgument);
  for (int i = 0; i < 2; ++i) {
    auto with = UpstreamRequest::make("POST", "/x");
    ASSERT_TRUE(with.ok());
    with->add(common);
    EXPECT_TRUE(with->add("X-Request-Id", std::to_string(i)).ok());
    with->finish("");
    EXPECT_EQ(with->rest(), "Authorization: Bearer k\r\nX-Request-Id: " + std::to_string(i) +
                                "\r\nContent-Length: 0\r\n\r\n");
  }

  auto get = UpstreamRequest::make("GET", "/ready");
  ASSERT_TRUE(get.ok());
  EXPECT_TRUE(get->add("host", "replica-1").ok());
  EXPECT_TRUE(get->has_host());
  get->finish("");
  EXPECT_EQ(get->rest(), "host: replica-1\r\n\r\n");  // No body, no Content-Length.
  auto empty_post = UpstreamRequest::make("POST", "/x");
  ASSERT_TRUE(empty_post.ok());
  empty_post->finish("");
  EXPECT_EQ(empty_post->rest(), "Content-Length: 0\r\n\r\n");
  auto head = UpstreamRequest::make("HEAD", "/x");
  ASSERT_TRUE(head.ok());
  EXPECT_TRUE(head->is_head());

  EXPECT_EQ(UpstreamRequest::make("PO ST", "/x").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(UpstreamRequest::make("POST", "x").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(UpstreamRequest::make("POST", "/a b").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(UpstreamRequest::make("POST", "/a\r\n").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(UpstreamRequest::make("POST", "").status().code(), ErrorCode::kInvalidArgument);
}

TEST(UpstreamClient, MalformedAnswerAndBadArgumentsAreTypedErrors) {
  RawListener listener;
  std::thread upstream([&] {
    const int fd = listener.accept_one();
    char buf[4096];
    (void)::recv(fd, buf, sizeof buf, 0);
    const std::string junk = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort";
    (void)::send(fd, junk.data(), junk.size(), MSG_NOSIGNAL);
    ::close(fd);
  });
  UpstreamClient client(guarded_options());
  Loop loop;
  Outcome truncated = loop.call(client, listener.port(), post("/x", "1"));
  upstream.join();
  ASSERT_FALSE(truncated.result.ok());
  EXPECT_EQ(truncated.result.error().code(), ErrorCode::kDataLoss);
  EXPECT_EQ(truncated.body, "short");  // What arrived was handed over before the error.

  HttpClientRequest bad_target = post("no-slash", "");
  Outcome o = loop.call(client, listener.port(), bad_target);
  ASSERT_FALSE(o.result.ok());
  EXPECT_EQ(o.result.error().code(), ErrorCode::kInvalidArgument);
  Outcome bad_port = loop.call(client, 0, post("/x", ""));
  ASSERT_FALSE(bad_port.result.ok());
  EXPECT_EQ(bad_port.result.error().code(), ErrorCode::kInvalidArgument);

  UpstreamClientOptions bad = guarded_options();
  bad.io_timeout = std::chrono::milliseconds(0);
  EXPECT_FALSE(bad.validate().ok());
}

}  // namespace
}  // namespace spillway::net
