// Many idle keep-alive connections on two I/O threads: each costs no thread, and all stay
// usable.
#include <gtest/gtest.h>

#include <vector>

#include "net/http_server.h"

#include "net_test_support.h"

namespace spillway::net {
namespace {

using testing::RawSocket;
using testing::read_response;
using testing::simple_get;
using testing::start_server;
using testing::test_options;

TEST(HttpServerScale, ThousandsOfIdleKeepAliveConnections) {
  constexpr int kConnections = 1500;
  Router router;
  ASSERT_TRUE(
      router
          .add("GET", "/ping",
               [](HttpRequest, ResponseWriter w) { w.respond(HttpResponse::text(200, "pong")); })
          .ok());
  HttpServerOptions o = test_options();
  o.io_threads = 2;
  o.listen_backlog = 4096;
  auto server = start_server(std::move(router), o);

  std::vector<RawSocket> sockets;
  sockets.reserve(kConnections);
  for (int i = 0; i < kConnections; ++i) {
    sockets.emplace_back(server->port());
    ASSERT_TRUE(sockets.back().connected()) << i;
    ASSERT_TRUE(sockets.back().send(simple_get("/ping")));
  }
  for (int i = 0; i < kConnections; ++i) {
    auto r = read_response(sockets[i]);
    ASSERT_TRUE(r) << i;
    ASSERT_EQ(r->body, "pong");
  }
  EXPECT_EQ(server->open_connections(), kConnections);  // All idle, all still open.
  for (int i = 0; i < kConnections; i += 7) {           // And still served on the same sockets.
    ASSERT_TRUE(sockets[i].send(simple_get("/ping")));
    auto r = read_response(sockets[i]);
    ASSERT_TRUE(r) << i;
    EXPECT_EQ(r->status, 200);
  }
}

}  // namespace
}  // namespace spillway::net
