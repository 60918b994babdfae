// Value types and pure helpers: headers, request-target parsing, responses, wire format,
// error bodies.
#include <gtest/gtest.h>

#include <string>

#include "net/error_renderer.h"
#include "net/http_headers.h"
#include "net/http_request.h"
#include "net/http_response.h"
#include "net/url.h"
#include "net/wire_format.h"

namespace spillway::net {
namespace {

TEST(HttpHeaders, LookupIsCaseInsensitiveAndKeepsOrder) {
  HttpHeaders h;
  h.add("Content-Type", "text/plain");
  h.add("X-Multi", "a");
  h.add("x-multi", "b");
  EXPECT_EQ(h.get("content-type"), "text/plain");
  EXPECT_EQ(h.get("CONTENT-TYPE"), "text/plain");
  EXPECT_FALSE(h.get("Content-Length").has_value());
  const auto all = h.get_all("X-MULTI");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0], "a");
  EXPECT_EQ(all[1], "b");

  h.set("X-Multi", "c");  // Replaces both, at the first one's position.
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h.get("x-multi"), "c");
  EXPECT_EQ(h.begin()[1].first, "X-Multi");
  h.set("New", "1");
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(h.remove("content-TYPE"), 1u);
  EXPECT_FALSE(h.contains("Content-Type"));
}

TEST(HttpHeaders, ValidatesNamesAndValues) {
  EXPECT_TRUE(is_valid_header_name("X-Request-Id"));
  EXPECT_FALSE(is_valid_header_name(""));
  EXPECT_FALSE(is_valid_header_name("Bad Name"));
  EXPECT_FALSE(is_valid_header_name("Bad:Name"));
  EXPECT_TRUE(is_valid_header_value("text/plain; charset=utf-8"));
  EXPECT_TRUE(is_valid_header_value(""));
  EXPECT_FALSE(is_valid_header_value("a\r\nX-Injected: 1"));
  EXPECT_FALSE(is_valid_header_value(std::string("a\0b", 3)));
}

TEST(HttpHeaders, EveryByteIsClassifiedAsRfc9110Says) {
  const std::string_view tchar_symbols = "!#$%&'*+-.^_`|~";
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    const bool alnum = (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || (b >= '0' && b <= '9');
    const bool tchar = alnum || tchar_symbols.find(c) != std::string_view::npos;
    EXPECT_EQ(is_valid_header_name(std::string(1, c)), tchar) << "byte " << b;
    EXPECT_EQ(is_valid_header_name("X-" + std::string(1, c) + "-Y"), tchar) << "byte " << b;
    const bool forbidden_in_value = b == '\r' || b == '\n' || b == 0;
    EXPECT_EQ(is_valid_header_value("ab" + std::string(1, c) + "cd"), !forbidden_in_value)
        << "byte " << b;
  }
  // The byte anywhere in longer names and values: inside the blocks checked 16 at a time and
  // in the tail after them.
  for (std::size_t at = 0; at < 40; ++at) {
    for (const char c : {'\r', '\n', '\0'}) {
      std::string value(40, 'v');
      value[at] = c;
      EXPECT_FALSE(is_valid_header_value(value)) << "at " << at;
      EXPECT_TRUE(is_valid_header_value(value.substr(0, at)));
    }
    std::string name(40, 'n');
    name[at] = ' ';
    EXPECT_FALSE(is_valid_header_name(name)) << "at " << at;
    EXPECT_TRUE(is_valid_header_name(name.substr(0, at + 1).replace(at, 1, "x")));
  }
}

TEST(HttpHeaders, IequalsIgnoresAsciiCaseOnly) {
  EXPECT_TRUE(iequals("Content-Length", "content-LENGTH"));
  EXPECT_TRUE(iequals("", ""));
  EXPECT_TRUE(iequals(std::string_view(), ""));  // A null view's data never reaches memcmp.
  EXPECT_FALSE(iequals("Content-Length", "Content-Lengt"));
  EXPECT_FALSE(iequals("Content-Length", "Content_Length"));
  EXPECT_FALSE(iequals("\xc3\xa9", "\xc3\x89"));  // Only ASCII letters fold.
  EXPECT_FALSE(iequals("@", "`"));                // 0x40 and 0x60 are no letters.
}

TEST(HttpHeaders, ListContainsToken) {
  EXPECT_TRUE(header_list_contains("keep-alive, Upgrade", "upgrade"));
  EXPECT_TRUE(header_list_contains(" 100-continue ", "100-Continue"));
  EXPECT_FALSE(header_list_contains("keep-alive-ish", "keep-alive"));
  EXPECT_FALSE(header_list_contains("", "close"));
}

TEST(Url, SplitsTargetAndDecodes) {
  const TargetParts p = split_target("/v1/models?limit=2&x=a%20b");
  EXPECT_EQ(p.path, "/v1/models");
  EXPECT_EQ(p.query, "limit=2&x=a%20b");
  EXPECT_EQ(split_target("/plain").query, "");

  EXPECT_EQ(percent_decode("a%2Fb+c", false).value(), "a/b+c");
  EXPECT_EQ(percent_decode("a%2fb+c", true).value(), "a/b c");
  EXPECT_EQ(percent_decode("%41%42", false).value(), "AB");
  EXPECT_EQ(percent_decode("bad%2", false).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(percent_decode("bad%zz", false).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(percent_decode("nul%00", false).error().code(), ErrorCode::kInvalidArgument);
}

TEST(Url, QueryParameters) {
  EXPECT_EQ(query_param("limit=2&name=a%20b+c&flag", "name"), "a b c");
  EXPECT_EQ(query_param("limit=2&flag", "flag"), "");
  EXPECT_EQ(query_param("limit=2", "missing"), std::nullopt);
  EXPECT_EQ(query_param("x=%zz", "x"), std::nullopt);
  HttpRequest request;
  request.query = "stream=true";
  request.path_params = {{"name", "alpha"}};
  EXPECT_EQ(request.query_param("stream"), "true");
  EXPECT_EQ(request.param("name"), "alpha");
  EXPECT_EQ(request.param("other"), std::nullopt);
}

TEST(HttpResponse, FactoriesAndStatusHelpers) {
  const HttpResponse r = HttpResponse::json(201, R"({"ok":true})");
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(r.headers.get("Content-Type"), "application/json");
  EXPECT_EQ(HttpResponse::text(200, "x").headers.get("content-type"), "text/plain; charset=utf-8");
  EXPECT_EQ(reason_phrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reason_phrase(299), "Unknown");
  EXPECT_TRUE(status_forbids_body(204));
  EXPECT_TRUE(status_forbids_body(304));
  EXPECT_FALSE(status_forbids_body(200));
  EXPECT_FALSE(is_valid_status(99));
  EXPECT_FALSE(is_valid_status(600));
}

TEST(ErrorRenderer, DefaultBodyIsEscapedJson) {
  const HttpResponse r = render_default_error(404, "no route for \"GET\" /x\n");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.headers.get("Content-Type"), "application/json");
  EXPECT_EQ(r.body,
            R"({"error":{"code":404,"status":"Not Found","message":"no route for \"GET\" /x\n"}})");
  EXPECT_EQ(json_escape(std::string("a\x01\\", 3)), "a\\u0001\\\\");
}

TEST(WireFormat, HeadAndChunks) {
  std::string out;
  internal::append_status_line(out, 404);
  internal::append_header(out, "Content-Length", "0");
  EXPECT_EQ(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n");
  out.clear();
  internal::append_chunk(out, std::string(26, 'x'));
  EXPECT_EQ(out, "1a\r\n" + std::string(26, 'x') + "\r\n");
  EXPECT_EQ(internal::http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
  std::string head;
  internal::append_number_header(head, "Content-Length", 0);
  internal::append_number_header(head, "Content-Length", 18446744073709551615ull);
  EXPECT_EQ(head, "Content-Length: 0\r\nContent-Length: 18446744073709551615\r\n");
  std::string dated;
  internal::append_date_header(dated, 784111777);
  internal::append_date_header(dated, 784111777);  // From the per-thread cache.
  internal::append_date_header(dated, 784111778);
  EXPECT_EQ(dated,
            "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
            "Date: Sun, 06 Nov 1994 08:49:38 GMT\r\n");
}

TEST(WireFormat, TooLongTargetDecidesBetween414And431) {
  const std::string long_target = "GET /" + std::string(100, 'a');
  EXPECT_TRUE(internal::request_target_exceeds(long_target, 50));  // Cut off mid-target.
  EXPECT_FALSE(internal::request_target_exceeds(long_target, 500));
  EXPECT_FALSE(internal::request_target_exceeds(
      "GET /short HTTP/1.1\r\nX-Big: " + std::string(100, 'b'), 50));
  EXPECT_FALSE(internal::request_target_exceeds("GARBAGE", 1));
}

}  // namespace
}  // namespace spillway::net
