#include "net/http1_parse.h"

#include <algorithm>
#include <bit>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "net/http_chars.h"
#include "net/http_headers.h"

namespace spillway::net::http1 {
namespace {

using internal::is_field_value_char;
using internal::is_token_char;
using internal::trim_ows;

constexpr int kMaxLengthDigits = 18;  // Below 2^63 whatever the digits.

Error malformed(std::string_view what) {
  return make_error(ErrorCode::kInvalidArgument, "{}", what);
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Every byte of `s` is HTAB, SP to '~', obs-text (0x80 and above), or a CR directly followed by
// a LF (and every LF follows a CR): the characters a head may hold, with CRLF line ends only.
#if defined(__SSE2__)
bool only_head_chars(std::string_view s) {
  const char* const p = s.data();
  const std::size_t n = s.size();
  const __m128i max_ctl = _mm_set1_epi8(0x1f);
  const __m128i tab = _mm_set1_epi8('\t');
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i del = _mm_set1_epi8(0x7f);
  unsigned carry = 0;  // The last byte of the previous block was a CR.
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const __m128i is_ctl = _mm_cmpeq_epi8(_mm_min_epu8(v, max_ctl), v);  // v <= 0x1f
    const __m128i is_cr = _mm_cmpeq_epi8(v, cr);
    const __m128i is_lf = _mm_cmpeq_epi8(v, lf);
    const __m128i allowed = _mm_or_si128(_mm_cmpeq_epi8(v, tab), _mm_or_si128(is_cr, is_lf));
    const __m128i bad = _mm_or_si128(_mm_andnot_si128(allowed, is_ctl), _mm_cmpeq_epi8(v, del));
    if (_mm_movemask_epi8(bad) != 0) return false;
    const auto cr_mask = static_cast<unsigned>(_mm_movemask_epi8(is_cr));
    const auto lf_mask = static_cast<unsigned>(_mm_movemask_epi8(is_lf));
    if ((((cr_mask << 1) & 0xffffu) | carry) != lf_mask) return false;
    carry = cr_mask >> 15;
  }
  for (; i < n; ++i) {
    const char c = p[i];
    const bool after_cr = carry != 0;
    carry = c == '\r' ? 1 : 0;
    if ((c == '\n') != after_cr) return false;
    if (c != '\r' && c != '\n' && !is_field_value_char(c)) return false;
  }
  return carry == 0;
}
#else
bool only_head_chars(std::string_view s) {
  bool after_cr = false;
  for (const char c : s) {
    if ((c == '\n') != after_cr) return false;
    after_cr = c == '\r';
    if (c != '\r' && c != '\n' && !is_field_value_char(c)) return false;
  }
  return !after_cr;
}
#endif

// Bit j set where p[j] == c, for the n <= 16 bytes at p.
std::uint32_t byte_mask_scalar(const char* p, std::size_t n, char c) {
  std::uint32_t mask = 0;
  for (std::size_t j = 0; j < n; ++j)
    mask |= static_cast<std::uint32_t>(p[j] == c) << j;
  return mask;
}

#if defined(__SSE2__)
std::uint32_t byte_mask(const char* p, std::size_t n, char c) {
  if (n < 16) return byte_mask_scalar(p, n, c);
  const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return static_cast<std::uint32_t>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(c))));
}
#else
std::uint32_t byte_mask(const char* p, std::size_t n, char c) {
  return byte_mask_scalar(p, n, c);
}
#endif

// name ":" OWS value OWS, with the line's CRLF already removed. The bytes were checked with the
// whole head (only_head_chars), or by the caller. False when the line is no field (obs-fold
// included: it starts with whitespace, which is no token).
// Inlined: `out` then stays in registers until the caller stores it whole (out of line, its
// four words went through the stack and were read back as two, which stalls).
[[gnu::always_inline]] inline bool parse_field_line(std::string_view line, Field& out) {
  // The name's bytes are tokens up to the colon: one pass finds the colon and checks them.
  std::size_t colon = 0;
  while (colon < line.size() && is_token_char(line[colon]))
    ++colon;
  if (colon == 0 || colon == line.size() || line[colon] != ':') return false;
  out = Field{line.substr(0, colon), trim_ows(line.substr(colon + 1))};
  return true;
}

Error not_a_field(std::string_view line) {
  if (line.front() == ' ' || line.front() == '\t') return malformed("obsolete line folding");
  return malformed("a field line is not a token name followed by ':'");
}

// 1 to kMaxLengthDigits digits.
bool parse_length(std::string_view text, std::uint64_t& out) {
  if (text.empty() || text.size() > kMaxLengthDigits) return false;
  std::uint64_t n = 0;
  for (const char c : text) {
    if (!is_digit(c)) return false;
    n = n * 10 + static_cast<std::uint64_t>(c - '0');
  }
  out = n;
  return true;
}

// Calls fn for each non-empty element of a comma-separated list, without the whitespace around.
template <typename Fn>
void for_each_token(std::string_view list, Fn&& fn) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    const std::string_view item = trim_ows(list.substr(0, comma));
    if (!item.empty()) fn(item);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
}

// The framing fields of a head, as read so far.
struct Framing {
  bool has_length = false;
  std::uint64_t length = 0;
  bool has_transfer_encoding = false;
  bool chunked_last = false;  // The last transfer coding seen is "chunked".
  bool close = false;         // Connection: close.
  bool keep_alive = false;    // Connection: keep-alive.
};

Status note_framing(const Field& f, Framing& framing) {
  switch (f.name.size()) {
    case 14:
      if (iequals(f.name, "Content-Length")) {
        std::uint64_t n = 0;
        if (!parse_length(f.value, n)) return malformed("bad Content-Length");
        if (framing.has_length && n != framing.length) {
          return malformed("Content-Length fields that disagree");
        }
        framing.has_length = true;
        framing.length = n;
      }
      break;
    case 17:
      if (iequals(f.name, "Transfer-Encoding")) {
        bool any = false;
        for_each_token(f.value, [&](std::string_view coding) {
          any = true;
          framing.chunked_last = iequals(coding, "chunked");
        });
        if (!any) return malformed("an empty Transfer-Encoding");
        framing.has_transfer_encoding = true;
      }
      break;
    case 10:
      if (iequals(f.name, "Connection")) {
        for_each_token(f.value, [&](std::string_view token) {
          framing.close = framing.close || iequals(token, "close");
          framing.keep_alive = framing.keep_alive || iequals(token, "keep-alive");
        });
      }
      break;
    default:
      break;
  }
  return Status::ok_status();
}

}  // namespace

std::size_t head_size(std::string_view bytes, std::size_t scanned) {
  // Resume a little before where the last search stopped: the end may straddle it.
  std::size_t from = scanned > 3 ? scanned - 3 : 0;
#if defined(__SSE2__)
  // 16 positions at a time: bit j of `end` is set where "\r\n\r\n" starts at from + j.
  const char* const p = bytes.data();
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i nl = _mm_set1_epi8('\n');
  for (; from + 19 <= bytes.size(); from += 16) {
    const auto at = [&](std::size_t k) {
      return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + from + k));
    };
    const __m128i end =
        _mm_and_si128(_mm_and_si128(_mm_cmpeq_epi8(at(0), cr), _mm_cmpeq_epi8(at(1), nl)),
                      _mm_and_si128(_mm_cmpeq_epi8(at(2), cr), _mm_cmpeq_epi8(at(3), nl)));
    const auto mask = static_cast<unsigned>(_mm_movemask_epi8(end));
    if (mask != 0) return from + static_cast<std::size_t>(std::countr_zero(mask)) + 4;
  }
#endif
  while (from < bytes.size()) {
    const void* lf = std::memchr(bytes.data() + from, '\n', bytes.size() - from);
    if (lf == nullptr) return 0;
    const auto at = static_cast<std::size_t>(static_cast<const char*>(lf) - bytes.data());
    // "\r\n\r\n" ends here when the three bytes before this LF are "\r\n\r".
    if (at >= 3 && bytes[at - 1] == '\r' && bytes[at - 2] == '\n' && bytes[at - 3] == '\r') {
      return at + 1;
    }
    from = at + 1;
  }
  return 0;
}

namespace {

// The lines of a complete head, checked as a whole first: no control character but HTAB, and
// CR only directly before LF (only_head_chars), so each line ends in CRLF.
class HeadLines {
 public:
  explicit HeadLines(std::string_view head) : head_(head), ok_(only_head_chars(head)) {}

  [[nodiscard]] bool chars_ok() const { return ok_; }
  // The next line without its CRLF; false at the end. The LFs come from a bit mask per block
  // of 16 bytes, not a search per line.
  bool next(std::string_view& line) {
    while (lf_mask_ == 0) {
      if (block_ >= head_.size()) return false;
      const std::size_t n = std::min<std::size_t>(16, head_.size() - block_);
      lf_mask_ = byte_mask(head_.data() + block_, n, '\n');
      block_ += 16;
    }
    const std::size_t lf = block_ - 16 + static_cast<std::size_t>(std::countr_zero(lf_mask_));
    lf_mask_ &= lf_mask_ - 1;
    line = head_.substr(start_, lf - 1 - start_);  // The CR before the LF is not part of it.
    start_ = lf + 1;
    return true;
  }
  [[nodiscard]] bool at_end() const { return start_ == head_.size(); }

 private:
  std::string_view head_;
  bool ok_;
  std::size_t start_ = 0;      // Where the next line starts.
  std::size_t block_ = 0;      // The next block to take LFs from.
  std::uint32_t lf_mask_ = 0;  // LFs of the current block not returned yet.
};

// The field lines after the start line, through the empty line that ends the head.
Status read_fields(HeadLines& lines, std::vector<Field>& fields, Framing& framing) {
  std::string_view line;
  for (;;) {
    if (!lines.next(line)) return malformed("a head without its empty last line");
    if (line.empty()) break;
    Field field;
    if (!parse_field_line(line, field)) return not_a_field(line);
    if (field.name.size() == 14 || field.name.size() == 17 || field.name.size() == 10) {
      SPW_TRY(note_framing(field, framing));
    }
    fields.push_back(field);
  }
  if (!lines.at_end()) return malformed("bytes after the end of the head");
  if (framing.has_length && framing.has_transfer_encoding) {
    return malformed("both Content-Length and Transfer-Encoding");
  }
  return Status::ok_status();
}

// HTTP-version ("HTTP/" DIGIT "." DIGIT) at the front of `text`; 0 when it is not one.
int read_version(std::string_view text) {
  if (text.size() < 8 || text.substr(0, 5) != "HTTP/" || !is_digit(text[5]) || text[6] != '.' ||
      !is_digit(text[7])) {
    return 0;
  }
  return (text[5] - '0') * 10 + (text[7] - '0');
}

// Resets what a request head and a response head share, and refuses a head whose bytes are
// not a head's (HeadLines' check).
template <typename Head>
Status start_head(const HeadLines& lines, Head& out) {
  out.fields.clear();
  out.framing = BodyFraming::kNone;
  out.content_length = 0;
  out.keep_alive = false;
  if (!lines.chars_ok()) return malformed("a control character or a bare CR or LF in the head");
  return Status::ok_status();
}

bool keeps_alive(int version, const Framing& framing) {
  return version >= 11 ? !framing.close : framing.keep_alive && !framing.close;
}

}  // namespace

Status parse_response_head(std::string_view head, bool head_request, ResponseHead& out) {
  HeadLines lines(head);
  SPW_TRY(start_head(lines, out));

  // HTTP-version SP 3DIGIT [SP reason-phrase]
  std::string_view line;
  if (!lines.next(line)) return malformed("no status line");
  const int version = read_version(line);
  if (version == 0 || line.size() < 12 || line[8] != ' ' || !is_digit(line[9]) ||
      !is_digit(line[10]) || !is_digit(line[11]) || (line.size() > 12 && line[12] != ' ')) {
    return malformed("bad status line");
  }
  if (version / 10 != 1) return malformed("an HTTP version other than 1.x");
  // A later 1.x speaks at least 1.1 (RFC 9110 section 2.5).
  out.version = version == 10 ? 10 : 11;
  out.status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
  if (out.status < 100) return malformed("a status code below 100");
  out.reason = line.size() > 13 ? line.substr(13) : std::string_view();

  Framing framing;
  SPW_TRY(read_fields(lines, out.fields, framing));
  const bool no_body =
      head_request || out.status / 100 == 1 || out.status == 204 || out.status == 304;
  if (no_body) {
    out.framing = BodyFraming::kNone;
  } else if (framing.has_transfer_encoding) {
    // A coding other than chunked last: the body runs until the close (RFC 9112 6.3).
    out.framing = framing.chunked_last ? BodyFraming::kChunked : BodyFraming::kUntilClose;
  } else if (framing.has_length) {
    out.framing = BodyFraming::kLength;
    out.content_length = framing.length;
  } else {
    out.framing = BodyFraming::kUntilClose;
  }
  out.keep_alive = out.framing != BodyFraming::kUntilClose && keeps_alive(out.version, framing);
  return Status::ok_status();
}

Status parse_request_head(std::string_view head, RequestHead& out) {
  HeadLines lines(head);
  SPW_TRY(start_head(lines, out));

  // method SP request-target SP HTTP-version
  std::string_view line;
  if (!lines.next(line)) return malformed("no request line");
  std::size_t i = 0;
  while (i < line.size() && is_token_char(line[i]))
    ++i;
  if (i == 0 || i == line.size() || line[i] != ' ') return malformed("bad method");
  out.method = line.substr(0, i);
  const std::size_t target_start = i + 1;
  const std::size_t target_end = line.find(' ', target_start);
  if (target_end == std::string_view::npos || target_end == target_start) {
    return malformed("bad request target");
  }
  out.target = line.substr(target_start, target_end - target_start);
  // Printable ASCII but SP, or obs-text; HTAB passed the head check but is no target byte.
  if (out.target.find('\t') != std::string_view::npos) return malformed("bad request target");
  const std::string_view version_text = line.substr(target_end + 1);
  const int version = read_version(version_text);
  if (version_text.size() != 8 || (version != 10 && version != 11)) {
    return malformed("bad version (HTTP/1.0 and HTTP/1.1 are read)");
  }
  out.version = version;

  Framing framing;
  SPW_TRY(read_fields(lines, out.fields, framing));
  if (framing.has_transfer_encoding) {
    // RFC 9112 6.1 and 6.3: a request whose framing could be read two ways is refused.
    if (version == 10) return malformed("Transfer-Encoding in an HTTP/1.0 request");
    if (!framing.chunked_last) return malformed("a transfer coding other than chunked last");
    out.framing = BodyFraming::kChunked;
  } else if (framing.has_length) {
    out.framing = BodyFraming::kLength;
    out.content_length = framing.length;
  }
  out.keep_alive = keeps_alive(version, framing);
  return Status::ok_status();
}

Result<ChunkedDecoder::Step> ChunkedDecoder::step(std::string_view in) {
  Step s;
  while (state_ != State::kDone && s.consumed < in.size()) {
    const std::string_view rest = in.substr(s.consumed);
    switch (state_) {
      case State::kData: {
        const auto n = static_cast<std::size_t>(
            std::min<std::uint64_t>(chunk_left_, static_cast<std::uint64_t>(rest.size())));
        s.data = rest.substr(0, n);
        s.consumed += n;
        chunk_left_ -= n;
        if (chunk_left_ == 0) state_ = State::kDataEnd;
        return s;
      }
      case State::kDataEnd: {
        if (rest.size() < 2) return s;
        if (rest[0] != '\r' || rest[1] != '\n') return malformed("chunk data not followed by CRLF");
        s.consumed += 2;
        state_ = State::kSize;
        break;
      }
      case State::kSize: {
        const std::size_t lf = rest.find('\n');
        if (lf == std::string_view::npos) {
          if (rest.size() >= max_line_bytes_) {
            return make_error(ErrorCode::kPayloadTooLarge, "a chunk-size line longer than {} bytes",
                              max_line_bytes_);
          }
          return s;
        }
        if (lf + 1 > max_line_bytes_) {
          return make_error(ErrorCode::kPayloadTooLarge, "a chunk-size line longer than {} bytes",
                            max_line_bytes_);
        }
        if (lf == 0 || rest[lf - 1] != '\r') return malformed("a line does not end with CRLF");
        const std::string_view line = rest.substr(0, lf - 1);
        std::size_t i = 0;
        std::uint64_t size = 0;
        for (; i < line.size() && hex_value(line[i]) >= 0; ++i) {
          if (i == 15) return malformed("a chunk size of more than 15 hex digits");
          size = size * 16 + static_cast<std::uint64_t>(hex_value(line[i]));
        }
        if (i == 0) return malformed("a chunk-size line without a size");
        // chunk-ext: BWS ";" ..., checked only for control characters.
        const std::string_view ext = trim_ows(line.substr(i));
        if (!ext.empty() &&
            (ext.front() != ';' || !std::all_of(ext.begin(), ext.end(), is_field_value_char))) {
          return malformed("a bad chunk extension");
        }
        s.consumed += lf + 1;
        if (size == 0) {
          state_ = State::kTrailer;
          trailer_bytes_ = 0;
        } else {
          chunk_left_ = size;
          state_ = State::kData;
        }
        break;
      }
      case State::kTrailer: {
        const std::size_t lf = rest.find('\n');
        const std::size_t line_bytes = lf == std::string_view::npos ? rest.size() : lf + 1;
        if (trailer_bytes_ + line_bytes > max_line_bytes_ ||
            (lf == std::string_view::npos && trailer_bytes_ + line_bytes == max_line_bytes_)) {
          return make_error(ErrorCode::kPayloadTooLarge, "a trailer section longer than {} bytes",
                            max_line_bytes_);
        }
        if (lf == std::string_view::npos) return s;
        if (lf == 0 || rest[lf - 1] != '\r') return malformed("a line does not end with CRLF");
        const std::string_view line = rest.substr(0, lf - 1);
        if (!line.empty()) {
          if (!only_head_chars(line)) return malformed("a control character in a trailer field");
          Field field;
          if (!parse_field_line(line, field)) return not_a_field(line);
        }
        trailer_bytes_ += line_bytes;
        s.consumed += line_bytes;
        if (line.empty()) state_ = State::kDone;
        break;
      }
      case State::kDone:
        break;
    }
  }
  return s;
}

}  // namespace spillway::net::http1
