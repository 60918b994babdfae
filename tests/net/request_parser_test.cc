// The server's request reading without sockets (net/request_parser.h): requests replayed from
// bytes, in reads of several sizes, as HttpConnection reads them, including the inputs kept
// from fuzzing (fuzz/http_fuzz.cc) and the limits on heads, chunk-size lines and trailers.
#include "net/request_parser.h"

#include <gtest/gtest.h>

#include <cstddef>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "net/error_renderer.h"

namespace spillway::net::internal {
namespace {

using Kind = ReplayedRequest::Kind;

// Reads of one byte (a slow client), a few bytes, and whatever a socket read gives.
constexpr std::size_t kReadSizes[] = {1, 7, 65536};

const Router& test_router() {
  static const Router router = [] {
    Router r;
    const HttpHandler noop = [](HttpRequest, ResponseWriter) {};
    EXPECT_TRUE(r.add("GET", "/healthz", noop).ok());
    EXPECT_TRUE(r.add("GET", "/v1/models", noop).ok());
    EXPECT_TRUE(r.add("GET", "/v1/models/{model}", noop).ok());
    EXPECT_TRUE(r.add("DELETE", "/v1/models/{model}", noop).ok());
    EXPECT_TRUE(r.add("POST", "/v1/completions", noop).ok());
    EXPECT_TRUE(r.add_prefix("GET", "/static/", noop).ok());
    return r;
  }();
  return router;
}

HttpServerOptions small_limits() {
  HttpServerOptions o;
  o.max_header_bytes = 1024;
  o.max_url_bytes = 64;
  o.max_body_bytes = 64;
  EXPECT_TRUE(o.validate().ok());
  return o;
}

std::vector<ReplayedRequest> replay(std::string_view bytes, std::size_t read_size,
                                    const HttpServerOptions& options = small_limits()) {
  return replay_requests(bytes, options, test_router(), read_size, 64);
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::filesystem::path data_dir(const char* name) {
  return std::filesystem::path(__FILE__).parent_path() / "data" / name;
}

// A head of `fields` filler fields of 40-byte values after the request line.
std::string long_head(int fields) {
  std::string head = "GET /healthz HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < fields; ++i) {
    head += "X-Filler-" + std::to_string(i) + ": " + std::string(40, 'v') + "\r\n";
  }
  return head + "\r\n";
}

TEST(RequestParser, PipelinedRequestsAreReadInOrderWhateverTheReadSize) {
  const std::string bytes =
      "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /v1/models/m%2Fx?limit=2 HTTP/1.1\r\nX-Request-Id: client-1\r\n\r\n"
      "DELETE /v1/models/abc HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz"
      "HEAD /static/a.css HTTP/1.1\r\nConnection: close\r\n\r\n"
      "GET /never-read HTTP/1.1\r\n\r\n";
  for (const std::size_t read_size : kReadSizes) {
    SCOPED_TRACE(read_size);
    const auto r = replay(bytes, read_size);
    ASSERT_EQ(r.size(), 4u);
    for (const auto& entry : r)
      EXPECT_EQ(entry.kind, Kind::kRouted);
    EXPECT_EQ(r[0].request.target, "/healthz");
    EXPECT_TRUE(r[0].keep_alive);
    EXPECT_EQ(r[1].request.path, "/v1/models/m%2Fx");
    EXPECT_EQ(r[1].request.query, "limit=2");
    EXPECT_EQ(r[1].request.param("model"), "m/x");
    EXPECT_EQ(r[1].request.request_id, "client-1");
    EXPECT_EQ(r[2].request.method, "DELETE");
    EXPECT_EQ(r[2].request.body, "xyz");
    EXPECT_EQ(r[3].request.method, "HEAD");  // Served by the GET prefix route.
    EXPECT_FALSE(r[3].keep_alive);           // Connection: close ends the replay.
  }
}

TEST(RequestParser, ChunkedBodyIsDecodedAndTrailerFieldsAreNotHeaders) {
  const std::string bytes =
      "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
      "Expect: 100-continue\r\n\r\n"
      "5\r\nhello\r\n6;ext=\"v\"\r\n world\r\n0\r\nX-Trailer: smuggled\r\n\r\n";
  for (const std::size_t read_size : kReadSizes) {
    SCOPED_TRACE(read_size);
    const auto r = replay(bytes, read_size);
    ASSERT_EQ(r.size(), 2u);
    ASSERT_EQ(r[0].kind, Kind::kRouted);
    EXPECT_TRUE(r[0].sent_continue);
    EXPECT_EQ(r[0].request.body, "hello world");
    EXPECT_EQ(r[0].request.headers.get("Transfer-Encoding"), "chunked");
    EXPECT_FALSE(r[0].request.headers.contains("X-Trailer"));
    EXPECT_EQ(r[0].request.headers.size(), 2u);
    EXPECT_EQ(r[1].kind, Kind::kClosed);
  }
}

TEST(RequestParser, RejectsWhatTheLimitsAndTheProtocolRule) {
  struct Case {
    std::string bytes;
    int status;
  };
  const std::vector<Case> cases = {
      {"GET /" + std::string(100, 'a') + " HTTP/1.1\r\n\r\n", 414},
      {"POST /v1/completions HTTP/1.1\r\nContent-Length: 65\r\n\r\n", 413},
      {"POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
       "41\r\n" +
           std::string(65, 'b') + "\r\n0\r\n\r\n",
       413},
      // Any version but 1.0 and 1.1 is malformed (http1_parse.h), before the 505 check.
      {"GET / HTTP/2.0\r\n\r\n", 400},
      {"G@T / HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
  };
  for (const Case& c : cases) {
    for (const std::size_t read_size : kReadSizes) {
      SCOPED_TRACE(c.bytes.substr(0, 40) + " read_size " + std::to_string(read_size));
      const auto r = replay(c.bytes, read_size);
      ASSERT_EQ(r.size(), 1u);
      EXPECT_EQ(r[0].kind, Kind::kRejected);
      EXPECT_EQ(r[0].error.status, c.status) << r[0].error.message;
      EXPECT_FALSE(r[0].keep_alive);
    }
  }
}

TEST(RequestParser, MalformedRequestsSayWhatWasWrong) {
  const auto r = replay("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", 65536);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].kind, Kind::kRejected);
  EXPECT_EQ(r[0].error.status, 400);
  EXPECT_EQ(r[0].error.message,
            "malformed request: a field line is not a token name followed by ':'");
  const auto folded = replay("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n", 7);
  ASSERT_EQ(folded.size(), 1u);
  EXPECT_EQ(folded[0].error.message, "malformed request: obsolete line folding");
}

TEST(RequestParser, RouteErrorsKeepTheConnection) {
  const std::string bytes =
      "GET /nope HTTP/1.1\r\n\r\n"
      "PUT /v1/models HTTP/1.1\r\n\r\n"
      "GET /v1/models/a%zz HTTP/1.1\r\nX-Request-Id: has space\r\n\r\n";
  const auto r = replay(bytes, 65536);
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].kind, Kind::kRouteError);
  EXPECT_EQ(r[0].error.status, 404);
  EXPECT_EQ(r[1].error.status, 405);
  EXPECT_EQ(r[1].error.allow, "GET, HEAD");
  EXPECT_EQ(r[2].error.status, 400);
  EXPECT_NE(r[2].request.request_id, "has space");  // Invalid: a fresh id instead.
  EXPECT_FALSE(r[2].request.request_id.empty());
  EXPECT_EQ(r[3].kind, Kind::kClosed);
}

// Fuzzing found a head of 1.6 KB accepted under a 1 KiB limit when it arrived in small reads:
// Beast applies its header limit only to the bytes after the parts it already consumed.
TEST(RequestParser, HeadLimitCountsTheWholeHeadWhateverTheReadSize) {
  const std::string fits = long_head(15);
  const std::string too_long = long_head(30);
  ASSERT_LT(fits.size(), 1024u);
  ASSERT_GT(too_long.size(), 1600u);
  for (const std::size_t read_size :
       {std::size_t{1}, std::size_t{7}, std::size_t{100}, std::size_t{512}, std::size_t{65536}}) {
    SCOPED_TRACE(read_size);
    const auto ok = replay(fits, read_size);
    ASSERT_EQ(ok.size(), 2u);
    EXPECT_EQ(ok[0].kind, Kind::kRouted);
    const auto r = replay(too_long, read_size);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].kind, Kind::kRejected);
    EXPECT_EQ(r[0].error.status, 431);
    EXPECT_LT(r[0].peak_buffered, 1024u);
  }
}

// Fuzzing found pipelined heads past the limit accepted, or refused for their Content-Length
// (413) rather than their size, when their end arrived in one read.
TEST(RequestParser, HeadEndingPastTheLimitInOneReadIsRejected) {
  for (const char* name : {"head_ends_past_limit_in_one_read", "body_limit_in_head_past_limit"}) {
    const std::string bytes = read_file(data_dir("http_fuzz_regressions") / name);
    ASSERT_GT(bytes.size(), 1024u) << name;
    for (const std::size_t read_size : kReadSizes) {
      SCOPED_TRACE(std::string(name) + " read_size " + std::to_string(read_size));
      const auto r = replay(bytes, read_size);
      ASSERT_EQ(r.size(), 2u);
      EXPECT_EQ(r[0].kind, Kind::kRouted);
      EXPECT_EQ(r[1].kind, Kind::kRejected);
      EXPECT_EQ(r[1].error.status, 431) << r[1].error.message;
    }
  }
}

// Beast waits unboundedly for the end of a chunk-size line or of the trailer section; the
// connection must not buffer more than a head's worth of them.
TEST(RequestParser, LongChunkSizeLineOrTrailerSectionIsRejected) {
  const std::string start = "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::vector<std::string> bodies = {
      "5;ext=" + std::string(4000, 'e'),
      "1\r\na\r\n0\r\nX-Trailer: " + std::string(4000, 't'),
  };
  for (const std::string& body : bodies) {
    for (const std::size_t read_size : kReadSizes) {
      SCOPED_TRACE(body.substr(0, 12) + " read_size " + std::to_string(read_size));
      const auto r = replay(start + body, read_size);
      ASSERT_EQ(r.size(), 1u);
      EXPECT_EQ(r[0].kind, Kind::kRejected);
      EXPECT_EQ(r[0].error.status, 431);
      EXPECT_LT(r[0].peak_buffered, 1024u);
    }
  }
}

// Fuzzing found a complete over-long trailer section (or chunk-size line) accepted when it came
// in one read and refused when it came in small ones: both must refuse it.
TEST(RequestParser, CompleteOverLongChunkLineOrTrailerIsRejectedWhateverTheReadSize) {
  const std::string start = "POST /v1/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::vector<std::string> bodies = {
      "5;ext=" + std::string(4000, 'e') + "\r\nhello\r\n0\r\n\r\n",
      "1\r\na\r\n0\r\nX-Trailer: " + std::string(4000, 't') + "\r\n\r\n",
  };
  std::vector<std::string> inputs;
  for (const std::string& body : bodies)
    inputs.push_back(start + body);
  // The fuzzer's input: a GET whose chunked body ends in ~1.1 KB of trailer fields.
  inputs.push_back(
      read_file(data_dir("http_fuzz_regressions") / "chunked_trailer_past_limit_in_one_read"));
  for (const std::string& input : inputs) {
    for (const std::size_t read_size : kReadSizes) {
      SCOPED_TRACE(input.substr(0, 40) + " read_size " + std::to_string(read_size));
      const auto r = replay(input, read_size);
      ASSERT_EQ(r.size(), 1u);
      EXPECT_EQ(r[0].kind, Kind::kRejected);
      EXPECT_EQ(r[0].error.status, 431);
    }
  }
}

// Fuzzing found trailer fields reaching handlers as headers (past the header limit): Beast
// files a trailer field after the last head field of the same name, not at the end.
TEST(RequestParser, TrailerFieldsNeverBecomeHeaders) {
  const std::string bytes =
      "POST /v1/completions HTTP/1.1\r\nX-A: head\r\nTransfer-Encoding: chunked\r\nX-B: "
      "head\r\n\r\n5\r\nhello\r\n0\r\nX-A: trailer\r\nAuthorization: Bearer smuggled\r\n\r\n";
  for (const std::size_t read_size : kReadSizes) {
    SCOPED_TRACE(read_size);
    const auto r = replay(bytes, read_size);
    ASSERT_FALSE(r.empty());
    ASSERT_EQ(r[0].kind, Kind::kRouted);
    const HttpRequest& q = r[0].request;
    EXPECT_EQ(q.body, "hello");
    EXPECT_EQ(q.headers.get("X-A"), "head");
    EXPECT_EQ(q.headers.get("X-B"), "head");
    EXPECT_FALSE(q.headers.contains("Authorization"));
    EXPECT_EQ(std::distance(q.headers.begin(), q.headers.end()), 3);
  }
}

// Fuzzing found error bodies that were not valid JSON: a 404 quotes the request path, whose
// bytes need not be UTF-8.
TEST(RequestParser, ErrorBodyQuotingTheRawPathIsValidUtf8) {
  const auto r = replay("GET /caf\xc3\xa9/\xff\xfe HTTP/1.1\r\n\r\n", 65536);
  ASSERT_EQ(r.size(), 2u);
  ASSERT_EQ(r[0].kind, Kind::kRouteError);
  EXPECT_EQ(r[0].error.status, 404);
  EXPECT_EQ(r[0].error.message, "no route for GET /caf\xc3\xa9/\xff\xfe");
  const HttpResponse response = render_default_error(404, r[0].error.message);
  EXPECT_NE(response.body.find("\"message\":\"no route for GET /caf\xc3\xa9/\\ufffd\\ufffd\""),
            std::string::npos)
      << response.body;

  EXPECT_EQ(json_escape("\xf0\x9f\x98\x80 ok"), "\xf0\x9f\x98\x80 ok");        // U+1F600.
  EXPECT_EQ(json_escape("\xc0\xaf"), "\\ufffd\\ufffd");                        // Overlong '/'.
  EXPECT_EQ(json_escape("\xed\xa0\x80"), "\\ufffd\\ufffd\\ufffd");             // A surrogate.
  EXPECT_EQ(json_escape("\xf4\x90\x80\x80"), "\\ufffd\\ufffd\\ufffd\\ufffd");  // > U+10FFFF.
  EXPECT_EQ(json_escape("a\xe2\x82"), "a\\ufffd\\ufffd");                      // Cut off.
}

// Every kept fuzzing input and seed: whatever the read size, no request past the limits reaches
// a handler, and the connection never holds a head's worth of unparsed bytes.
TEST(RequestParser, FuzzInputsStayWithinTheLimits) {
  const HttpServerOptions options = small_limits();
  int files = 0;
  for (const char* dir : {"http_fuzz_seeds", "http_fuzz_regressions"}) {
    for (const auto& entry : std::filesystem::directory_iterator(data_dir(dir))) {
      SCOPED_TRACE(entry.path().string());
      ++files;
      const std::string bytes = read_file(entry.path());
      for (const std::size_t read_size : kReadSizes) {
        const auto r = replay(bytes, read_size);
        ASSERT_FALSE(r.empty());
        for (std::size_t i = 0; i < r.size(); ++i) {
          EXPECT_LT(r[i].peak_buffered, options.max_header_bytes);
          if (i + 1 < r.size()) {
            EXPECT_TRUE(r[i].keep_alive);
          }
          if (r[i].kind != Kind::kRouted && r[i].kind != Kind::kRouteError) continue;
          const HttpRequest& q = r[i].request;
          EXPECT_LE(q.target.size(), options.max_url_bytes);
          EXPECT_LE(q.body.size(), options.max_body_bytes);
          std::size_t head = q.method.size() + q.target.size();
          for (const auto& [name, value] : q.headers)
            head += name.size() + value.size();
          EXPECT_LE(head, options.max_header_bytes);
        }
      }
    }
  }
  EXPECT_GE(files, 20);
}

}  // namespace
}  // namespace spillway::net::internal
