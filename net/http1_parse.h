// HTTP/1.1 message syntax (RFC 9112) over bytes in memory, for the server's reading of requests
// and the upstream client's reading of responses: where a head ends, the request or status line
// and the header fields, what frames the body (RFC 9112 section 6.3), and a decoder of the
// chunked transfer coding. No I/O; the views point into the caller's bytes, and
// nothing is allocated but the capacity of a head's field list, which a reader keeps from one
// message to the next.
//
// Strict where leniency could let one message be read as another: lines end with CRLF (a bare
// LF or CR is malformed); a field name is a token followed directly by ':'; a value holds no
// control character but HTAB; obs-fold (a line that starts with SP or HTAB) is malformed;
// Content-Length is 1 to 18 digits, repeated only with the same value; Content-Length together
// with Transfer-Encoding is malformed (two framings for one message).
//
// Errors: kInvalidArgument for malformed bytes, kPayloadTooLarge for a chunk-size line or
// trailer section past the decoder's limit; the message says what was wrong (for a caller to
// prefix, e.g. "malformed request: ").
//
// Thread-safety: the functions are pure; a ChunkedDecoder belongs to one reader.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace spillway::net::http1 {

struct Field {
  std::string_view name;
  std::string_view value;  // Without the whitespace around it.
};

enum class BodyFraming : std::uint8_t {
  kNone,        // No body: an answer to HEAD, or status 1xx, 204, 304.
  kLength,      // content_length bytes.
  kChunked,     // The chunked transfer coding (ChunkedDecoder).
  kUntilClose,  // Everything until the peer closes the connection.
};

struct ResponseHead {
  int version = 0;  // 10 for HTTP/1.0, 11 for HTTP/1.1 and later 1.x.
  int status = 0;   // Three digits, 100 to 999.
  std::string_view reason;
  std::vector<Field> fields;  // In order, as received.
  BodyFraming framing = BodyFraming::kNone;
  std::uint64_t content_length = 0;  // kLength only.
  // The connection may carry another message after this one: HTTP/1.1 without
  // "Connection: close", or HTTP/1.0 with "Connection: keep-alive"; never with kUntilClose.
  bool keep_alive = false;
};

struct RequestHead {
  std::string_view method;  // A token.
  std::string_view target;  // Printable ASCII but SP, and obs-text; not checked further.
  int version = 0;          // 10 or 11: other versions are malformed.
  std::vector<Field> fields;
  // kNone, kLength or kChunked: a request body never runs until the close.
  BodyFraming framing = BodyFraming::kNone;
  std::uint64_t content_length = 0;  // kLength only.
  bool keep_alive = false;           // As ResponseHead::keep_alive.
};

// The size of the head at the front of `bytes`, through the empty line that ends it; 0 while
// `bytes` holds no complete head. `scanned`: how many bytes an earlier call found no end in
// (the search resumes there, so a head read in many small pieces is searched once).
[[nodiscard]] std::size_t head_size(std::string_view bytes, std::size_t scanned = 0);

// Parses a complete response head (the head_size() bytes at the front of the response) into
// `out`, reusing its field list. `head_request`: the request's method was HEAD, so the answer
// has no body whatever its fields say. On an error `out` is left partly filled.
[[nodiscard]] Status parse_response_head(std::string_view head, bool head_request,
                                         ResponseHead& out);

// Parses a complete request head into `out`, as parse_response_head. A request with
// Transfer-Encoding is malformed unless it is HTTP/1.1 with chunked as the last coding.
[[nodiscard]] Status parse_request_head(std::string_view head, RequestHead& out);

// Decodes a chunked body (RFC 9112 section 7.1) one step at a time from the front of the
// bytes read so far. Chunk extensions and trailer fields are checked and dropped.
class ChunkedDecoder {
 public:
  struct Step {
    std::size_t consumed = 0;  // Bytes of the input used, framing and data.
    std::string_view data;     // Body bytes: a view of the input, within `consumed`.
  };

  // `max_line_bytes` bounds a chunk-size line (with its extensions) and the whole trailer
  // section. REQUIRES: at least 3.
  explicit ChunkedDecoder(std::size_t max_line_bytes) : max_line_bytes_(max_line_bytes) {}

  // Reads framing from the front of `in` up to the next body bytes and returns them (as many of
  // the chunk as `in` holds), or up to the end of the body, or as far as `in` holds complete
  // framing. consumed == 0 with no data and !done(): more bytes are needed. A line not complete
  // in `in` is left for the next call, with the bytes after it.
  [[nodiscard]] Result<Step> step(std::string_view in);

  // The last chunk and the trailer section were read: the body is complete.
  [[nodiscard]] bool done() const { return state_ == State::kDone; }

 private:
  enum class State : std::uint8_t { kSize, kData, kDataEnd, kTrailer, kDone };

  std::size_t max_line_bytes_;
  State state_ = State::kSize;
  std::uint64_t chunk_left_ = 0;   // kData: bytes of the chunk still to come.
  std::size_t trailer_bytes_ = 0;  // kTrailer: bytes of the trailer section read so far.
};

}  // namespace spillway::net::http1
