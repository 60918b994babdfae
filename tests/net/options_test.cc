#include <gtest/gtest.h>

#include "net/http_client.h"
#include "net/http_server.h"
#include "net/http_server_options.h"

namespace spillway::net {
namespace {

TEST(HttpServerOptions, DefaultsAreValid) {
  const HttpServerOptions o;
  EXPECT_TRUE(o.validate().ok());
  EXPECT_EQ(o.io_threads, 2);
  EXPECT_EQ(o.max_connections, 4096);
  EXPECT_EQ(o.max_header_bytes, 16u * 1024);
  EXPECT_EQ(o.max_url_bytes, 8u * 1024);
  EXPECT_EQ(o.max_body_bytes, 4u * 1024 * 1024);
  EXPECT_EQ(o.header_timeout, std::chrono::seconds(10));
  EXPECT_EQ(o.idle_timeout, std::chrono::seconds(60));
}

TEST(HttpServerOptions, ValidationNamesTheField) {
  auto expect_invalid = [](HttpServerOptions o, std::string_view field) {
    const Status s = o.validate();
    ASSERT_FALSE(s.ok()) << field;
    EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(s.error().message().find(field), std::string::npos) << s.error().message();
  };
  HttpServerOptions o;
  o.port = 70000;
  expect_invalid(o, "port");
  o = {};
  o.io_threads = 0;
  expect_invalid(o, "io_threads");
  o = {};
  o.max_connections = 0;
  expect_invalid(o, "max_connections");
  o = {};
  o.max_url_bytes = o.max_header_bytes + 1;
  expect_invalid(o, "max_url_bytes");
  o = {};
  o.max_header_bytes = 100;
  expect_invalid(o, "max_header_bytes");
  o = {};
  o.header_timeout = std::chrono::milliseconds(0);
  expect_invalid(o, "header_timeout");
  o = {};
  o.host = "";
  expect_invalid(o, "host");
}

TEST(HttpServerOptions, FromConfig) {
  auto doc = ConfigDocument::parse(R"(
[http]
host = "0.0.0.0"
port = 8080
io_threads = 4
busy_poll_us = 40
max_body_bytes = 1024
header_timeout_ms = 250
)",
                                   "test.toml");
  ASSERT_TRUE(doc.ok());
  auto table = doc->root().table("http");
  ASSERT_TRUE(table.ok());
  auto o = http_server_options_from_config(*table);
  ASSERT_TRUE(o.ok()) << o.error().to_string();
  EXPECT_EQ(o->host, "0.0.0.0");
  EXPECT_EQ(o->port, 8080);
  EXPECT_EQ(o->io_threads, 4);
  EXPECT_EQ(o->busy_poll, std::chrono::microseconds(40));
  EXPECT_EQ(o->max_body_bytes, 1024u);
  EXPECT_EQ(o->header_timeout, std::chrono::milliseconds(250));
  EXPECT_EQ(o->idle_timeout, std::chrono::seconds(60));  // Default kept.

  auto bad = ConfigDocument::parse("[http]\nport = 8080\nmax_conections = 3\n", "bad.toml");
  ASSERT_TRUE(bad.ok());
  auto bad_options = http_server_options_from_config(*bad->root().table("http"));
  ASSERT_FALSE(bad_options.ok());
  EXPECT_NE(bad_options.error().message().find("max_conections"), std::string::npos);

  auto range = ConfigDocument::parse("[http]\nio_threads = 0\n", "range.toml");
  ASSERT_TRUE(range.ok());
  EXPECT_FALSE(http_server_options_from_config(*range->root().table("http")).ok());
}

TEST(HttpServer, StartRejectsBadOptionsAndBusyPort) {
  HttpServerOptions bad;
  bad.io_threads = 0;
  HttpServer s1(bad, Router());
  EXPECT_EQ(s1.start().code(), ErrorCode::kInvalidArgument);

  HttpServerOptions host;
  host.host = "not-an-address";
  HttpServer s2(host, Router());
  EXPECT_EQ(s2.start().code(), ErrorCode::kInvalidArgument);

  HttpServer first(HttpServerOptions{}, Router());
  ASSERT_TRUE(first.start().ok());
  ASSERT_NE(first.port(), 0);
  EXPECT_EQ(first.start().code(), ErrorCode::kFailedPrecondition);
  HttpServerOptions same;
  same.port = first.port();
  HttpServer second(same, Router());
  const Status busy = second.start();
  EXPECT_EQ(busy.code(), ErrorCode::kUnavailable);
  first.stop();
  first.stop();  // Idempotent.
}

TEST(HttpClientOptions, Validation) {
  HttpClientOptions o;
  EXPECT_TRUE(o.validate().ok());
  o.port = 0;
  EXPECT_FALSE(o.validate().ok());
  o = {};
  o.io_timeout = std::chrono::milliseconds(0);
  EXPECT_FALSE(o.validate().ok());
  o = {};
  o.host = "example.com";
  o.port = 80;
  HttpClient client(o);
  auto r = client.request({});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);  // No DNS lookups.
}

}  // namespace
}  // namespace spillway::net
