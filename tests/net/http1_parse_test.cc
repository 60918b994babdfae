// The HTTP/1.1 response reading of net/http1_parse.h: where heads end, what a head says and
// which ones are refused, and chunked decoding however the bytes are split, against a plain
// encoder as the reference.
#include "net/http1_parse.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace spillway::net::http1 {
namespace {

Result<ResponseHead> parse(std::string_view head, bool head_request = false) {
  ResponseHead out;
  const Status s = parse_response_head(head, head_request, out);
  if (!s.ok()) return s.error();
  return out;
}

TEST(Http1HeadSize, FindsTheEmptyLineAndResumesWhereItStopped) {
  EXPECT_EQ(head_size(""), 0u);
  EXPECT_EQ(head_size("HTTP/1.1 200 OK\r\nA: b\r\n"), 0u);
  const std::string head = "HTTP/1.1 200 OK\r\nA: b\r\n\r\n";
  EXPECT_EQ(head_size(head + "body"), head.size());
  // The end straddles the point where an earlier search stopped (one that had all of it would
  // have found it).
  for (std::size_t scanned = 0; scanned < head.size(); ++scanned) {
    EXPECT_EQ(head_size(head, scanned), head.size()) << scanned;
  }
  EXPECT_EQ(head_size("\n\r\n\r\n"), 5u);      // The first CRLFCRLF, whatever precedes it.
  EXPECT_EQ(head_size("A\n\nB\r\r\n\n"), 0u);  // Bare LFs and CRs end nothing.
  // Ends found in every position of the 16-byte blocks, and the first of two.
  for (std::size_t at = 0; at < 40; ++at) {
    const std::string bytes = std::string(at, 'x') + "\r\n\r\n" + "y\r\n\r\n";
    EXPECT_EQ(head_size(bytes), at + 4) << at;
    for (std::size_t scanned = 0; scanned < at + 4; ++scanned) {
      EXPECT_EQ(head_size(bytes, scanned), at + 4) << at << " " << scanned;
    }
    EXPECT_EQ(head_size(std::string(at, 'x') + "\r\n\r"), 0u) << at;
  }
}

TEST(Http1ResponseHead, ReadsStatusFieldsAndFraming) {
  auto r = parse(
      "HTTP/1.1 201 Created\r\nServer: x\r\nX-Two:  b c \t\r\nContent-Length: 42\r\n"
      "Empty:\r\n\r\n");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->version, 11);
  EXPECT_EQ(r->status, 201);
  EXPECT_EQ(r->reason, "Created");
  ASSERT_EQ(r->fields.size(), 4u);
  EXPECT_EQ(r->fields[1].name, "X-Two");
  EXPECT_EQ(r->fields[1].value, "b c");  // Whitespace around the value is not part of it.
  EXPECT_EQ(r->fields[3].name, "Empty");
  EXPECT_EQ(r->fields[3].value, "");
  EXPECT_EQ(r->framing, BodyFraming::kLength);
  EXPECT_EQ(r->content_length, 42u);
  EXPECT_TRUE(r->keep_alive);

  // A later minor version reads as 1.1.
  EXPECT_EQ(parse("HTTP/1.2 200 OK\r\nContent-Length: 0\r\n\r\n")->version, 11);
  // No reason phrase, with or without the space before it.
  EXPECT_EQ(parse("HTTP/1.1 204\r\n\r\n")->status, 204);
  EXPECT_EQ(parse("HTTP/1.1 204 \r\n\r\n")->status, 204);
  // obs-text is allowed in values.
  EXPECT_TRUE(parse("HTTP/1.1 200 OK\r\nA: caf\xc3\xa9\r\nContent-Length: 0\r\n\r\n").ok());
}

TEST(Http1ResponseHead, FramingFollowsRfc9112) {
  const auto framing = [](std::string_view head, bool head_request = false) {
    auto r = parse(head, head_request);
    EXPECT_TRUE(r.ok()) << head << ": " << r.error().to_string();
    return r.ok() ? r->framing : BodyFraming::kNone;
  };
  EXPECT_EQ(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
            BodyFraming::kChunked);
  EXPECT_EQ(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, CHUNKED\r\n\r\n"),
            BodyFraming::kChunked);
  // Chunked is not the last coding: the body ends at the close.
  EXPECT_EQ(framing("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            BodyFraming::kUntilClose);
  EXPECT_EQ(framing("HTTP/1.1 200 OK\r\n\r\n"), BodyFraming::kUntilClose);
  // No body whatever the fields say.
  EXPECT_EQ(framing("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", true), BodyFraming::kNone);
  EXPECT_EQ(framing("HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"), BodyFraming::kNone);
  EXPECT_EQ(framing("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
            BodyFraming::kNone);
  EXPECT_EQ(framing("HTTP/1.1 100 Continue\r\n\r\n"), BodyFraming::kNone);
  // The same length twice is one length.
  EXPECT_EQ(framing("HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n"),
            BodyFraming::kLength);
}

TEST(Http1ResponseHead, KeepAliveFromVersionAndConnection) {
  const auto keep_alive = [](std::string_view head) {
    auto r = parse(head);
    EXPECT_TRUE(r.ok()) << head;
    return r.ok() && r->keep_alive;
  };
  EXPECT_TRUE(keep_alive("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_FALSE(keep_alive("HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_FALSE(keep_alive("HTTP/1.1 200 OK\r\nConnection: x, close\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_FALSE(keep_alive("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_TRUE(keep_alive("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"));
  EXPECT_FALSE(keep_alive("HTTP/1.1 200 OK\r\n\r\n"));  // Until the close: never reused.
}

TEST(Http1ResponseHead, RefusesWhatCouldBeReadTwoWays) {
  const std::vector<std::string> bad = {
      "HTTP/1.1 200 OK\nA: b\r\n\r\n",          // Bare LF ends the status line.
      "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n",     // Bare CR inside a value.
      "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n",  // obs-fold.
      "HTTP/1.1 200 OK\r\nA : b\r\n\r\n",       // Whitespace before the colon.
      "HTTP/1.1 200 OK\r\n: b\r\n\r\n",         // No name.
      "HTTP/1.1 200 OK\r\nA(b): c\r\n\r\n",     // A name that is not a token.
      "HTTP/1.1 200 OK\r\nNo colon\r\n\r\n",    //
      "HTTP/1.1 200 OK\r\nA: b\x01\r\n\r\n",    // A control character.
      "HTTP/1.1 200 OK\r\nA: b\x7f\r\n\r\n",    // DEL.
      "HTTP/1.1 200 O\x02K\r\n\r\n",            // ... in the reason phrase.
      "HTTP/2.0 200 OK\r\n\r\n",                // Not HTTP/1.x.
      "HTTP/1.1 099 Low\r\n\r\n",               // Below 100.
      "HTTP/1.1 20 OK\r\n\r\n",                 // Two digits.
      "HTTP/1.1 2000 OK\r\n\r\n",               //
      "HTTP/1.1  200 OK\r\n\r\n",               //
      "http/1.1 200 OK\r\n\r\n",                //
      "HTTP/1.1 200OK\r\n\r\n",                 //
      "\r\n\r\n",                               // No status line at all.
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1234567890123456789\r\n\r\n",  // 19 digits.
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: ,\r\n\r\n",
  };
  for (const std::string& head : bad) {
    auto r = parse(head);
    ASSERT_FALSE(r.ok()) << head;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << head;
  }
  // The longest length accepted: 18 digits.
  auto longest = parse("HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\n");
  ASSERT_TRUE(longest.ok());
  EXPECT_EQ(longest->content_length, 999999999999999999u);
}

Result<RequestHead> parse_request(std::string_view head) {
  RequestHead out;
  const Status s = parse_request_head(head, out);
  if (!s.ok()) return s.error();
  return out;
}

TEST(Http1RequestHead, ReadsTheRequestLineFieldsAndFraming) {
  auto r = parse_request(
      "POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n"
      "Authorization:Bearer k\r\n\r\n");
  ASSERT_TRUE(r.ok()) << r.error().to_string();
  EXPECT_EQ(r->method, "POST");
  EXPECT_EQ(r->target, "/v1/chat/completions?x=1");
  EXPECT_EQ(r->version, 11);
  ASSERT_EQ(r->fields.size(), 3u);
  EXPECT_EQ(r->fields[2].value, "Bearer k");
  EXPECT_EQ(r->framing, BodyFraming::kLength);
  EXPECT_EQ(r->content_length, 12u);
  EXPECT_TRUE(r->keep_alive);

  auto get = parse_request("GET /caf\xc3\xa9 HTTP/1.0\r\n\r\n");  // obs-text in the target.
  ASSERT_TRUE(get.ok()) << get.error().to_string();
  EXPECT_EQ(get->framing, BodyFraming::kNone);  // A request without framing has no body.
  EXPECT_FALSE(get->keep_alive);
  EXPECT_TRUE(parse_request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")->keep_alive);
  EXPECT_FALSE(parse_request("GET / HTTP/1.1\r\nConnection: close\r\n\r\n")->keep_alive);
  EXPECT_EQ(parse_request("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")->framing,
            BodyFraming::kChunked);
}

TEST(Http1RequestHead, RefusesBadRequestLinesAndAmbiguousFraming) {
  const std::vector<std::string> bad = {
      "G@T / HTTP/1.1\r\n\r\n",            // The method is no token.
      " GET / HTTP/1.1\r\n\r\n",           //
      "GET  / HTTP/1.1\r\n\r\n",           // Two spaces.
      "GET / HTTP/1.1 \r\n\r\n",           //
      "GET /a\tb HTTP/1.1\r\n\r\n",        // HTAB in the target.
      "GET / HTTP/2.0\r\n\r\n",            // Only 1.0 and 1.1.
      "GET / HTTP/1.2\r\n\r\n",            //
      "GET /\r\n\r\n",                     // HTTP/0.9.
      "GET / HTTP/1.1\r\nA\r\n\r\n",       // No colon.
      "GET / HTTP/1.1\r\n\tA: b\r\n\r\n",  // obs-fold.
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
      "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
      "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
      "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
  };
  for (const std::string& head : bad) {
    auto r = parse_request(head);
    ASSERT_FALSE(r.ok()) << head;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << head;
  }
}

// Chunked encoding of `body` in pieces of the given sizes, with an extension on every second
// chunk-size line and the given trailer section.
std::string chunked(std::string_view body, const std::vector<std::size_t>& sizes,
                    std::string_view trailers = "") {
  std::string out;
  std::size_t at = 0;
  char hex[32];
  for (std::size_t i = 0; at < body.size(); ++i) {
    const std::size_t n = std::min(sizes[i % sizes.size()], body.size() - at);
    std::snprintf(hex, sizeof hex, i % 2 == 0 ? "%zx" : "%zX ; ext=\"v\"", n);
    out.append(hex).append("\r\n").append(body.substr(at, n)).append("\r\n");
    at += n;
  }
  return out.append("0\r\n").append(trailers).append("\r\n");
}

struct Decoded {
  std::string body;
  std::size_t used = 0;  // Input bytes consumed.
  bool done = false;
  std::optional<Error> error;
  std::size_t peak_buffered = 0;  // Most bytes left unconsumed between feeds.
};

// Feeds `wire` to a decoder in reads of `read_size` bytes, keeping what it left unconsumed, as
// the upstream client does with its read buffer.
Decoded decode(std::string_view wire, std::size_t read_size, std::size_t max_line = 64) {
  ChunkedDecoder decoder(max_line);
  Decoded out;
  std::string buffered;
  std::size_t fed = 0;
  while (!out.done) {
    const std::size_t n = std::min(read_size, wire.size() - fed);
    if (n == 0) break;
    buffered.append(wire.substr(fed, n));
    fed += n;
    std::size_t used = 0;
    for (;;) {
      auto step = decoder.step(std::string_view(buffered).substr(used));
      if (!step.ok()) {
        out.error = step.error();
        return out;
      }
      out.body.append(step->data);
      used += step->consumed;
      if (decoder.done() || step->consumed == 0) break;
    }
    out.done = decoder.done();
    buffered.erase(0, used);
    out.used += used;
    out.peak_buffered = std::max(out.peak_buffered, buffered.size());
  }
  return out;
}

TEST(Http1ChunkedDecoder, DecodesTheSameWhateverTheReadSizes) {
  std::mt19937 rng(7);
  for (int round = 0; round < 50; ++round) {
    std::string body(rng() % 3000, '\0');
    for (char& c : body)
      c = static_cast<char>(rng());
    const std::vector<std::size_t> sizes = {1 + rng() % 700, 1 + rng() % 50, 1 + rng() % 4000};
    const std::string trailers = round % 3 == 0 ? "X-Checksum: abc\r\nY:\r\n" : "";
    const std::string wire = chunked(body, sizes, trailers);
    for (const std::size_t read_size : {std::size_t{1}, std::size_t{2}, std::size_t{7},
                                        std::size_t{1 + rng() % 600}, wire.size()}) {
      const Decoded d = decode(wire + "NEXT", read_size);
      ASSERT_FALSE(d.error) << d.error->to_string();
      ASSERT_TRUE(d.done) << "round " << round << " read " << read_size;
      EXPECT_TRUE(d.body == body) << "round " << round << " read " << read_size;
      EXPECT_EQ(d.used, wire.size());  // Nothing of the next message.
      EXPECT_LE(d.peak_buffered, 64u + read_size);
    }
  }
}

TEST(Http1ChunkedDecoder, RefusesBadFramingAndBoundsLines) {
  const std::vector<std::string> malformed = {
      "5\r\nhello0\r\n\r\n",       // Data not followed by CRLF.
      "g\r\n",                     // Not hex.
      "\r\n",                      // No size.
      "5\n",                       // Bare LF.
      "5;a=b\x01\r\n",             // A control character in an extension.
      "5 x\r\n",                   // Text after the size that is no extension.
      "1000000000000000\r\n",      // 16 hex digits.
      "0\r\nBad Trailer\r\n\r\n",  // A trailer line that is no field.
      "0\r\nA: b\x7f\r\n\r\n",     // A control character in a trailer.
  };
  for (const std::string& wire : malformed) {
    for (const std::size_t read_size : {std::size_t{1}, wire.size()}) {
      const Decoded d = decode(wire, read_size);
      ASSERT_TRUE(d.error) << wire;
      EXPECT_EQ(d.error->code(), ErrorCode::kInvalidArgument) << wire;
    }
  }
  // Fifteen hex digits are accepted.
  EXPECT_FALSE(decode("fffffffffffffff\r\nab", 100).error);
  // A chunk-size line or trailer section as long as the limit, or longer, whether complete or
  // still arriving.
  const std::string long_ext = "5;" + std::string(70, 'e') + "\r\n";
  const std::string long_trailer = "0\r\nX: " + std::string(70, 't') + "\r\n\r\n";
  for (const std::string& wire :
       {long_ext, long_ext.substr(0, 64), long_trailer, long_trailer.substr(0, 67)}) {
    for (const std::size_t read_size : {std::size_t{1}, wire.size()}) {
      const Decoded d = decode(wire, read_size);
      ASSERT_TRUE(d.error) << wire;
      EXPECT_EQ(d.error->code(), ErrorCode::kPayloadTooLarge) << wire;
    }
  }
  std::string trailers = "0\r\n";
  for (int i = 0; i < 10; ++i)
    trailers += "A: bcdef\r\n";  // 10 bytes each: 103 in all with the rest.
  const Decoded d = decode(trailers + "\r\n", 5);
  ASSERT_TRUE(d.error);
  EXPECT_EQ(d.error->code(), ErrorCode::kPayloadTooLarge);
  EXPECT_TRUE(decode("0\r\nA: bcdef\r\n\r\n", 5).done);
}

}  // namespace
}  // namespace spillway::net::http1
