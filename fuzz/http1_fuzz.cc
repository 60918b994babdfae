// libFuzzer target for the upstream client's reading of responses (net/http1_parse.h): the input
// is what a replica sends on one connection. The first byte picks the size of the reads the
// body is decoded in. Checked: head_size finds the first CRLFCRLF, and finds it the same when
// it resumes; a head that parses holds only token names and values without control characters,
// and its framing agrees with its fields; a chunked body decodes to the same bytes, the same
// end and the same failure whether it arrives at once or in small reads, and the decoder never
// leaves more than its line limit unconsumed.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "net/http1_parse.h"
#include "net/http_headers.h"

namespace {

using namespace spillway::net;

constexpr std::size_t kMaxLine = 256;

void require(bool condition) {
  if (!condition) __builtin_trap();
}

struct Decoded {
  std::string body;
  std::size_t used = 0;
  bool done = false;
  bool failed = false;
};

Decoded decode(std::string_view wire, std::size_t read_size) {
  http1::ChunkedDecoder decoder(kMaxLine);
  Decoded out;
  std::string buffered;
  std::size_t fed = 0;
  while (!out.done && fed < wire.size()) {
    const std::size_t n = std::min(read_size, wire.size() - fed);
    buffered.append(wire.substr(fed, n));
    fed += n;
    std::size_t used = 0;
    for (;;) {
      auto step = decoder.step(std::string_view(buffered).substr(used));
      if (!step.ok()) {
        out.failed = true;
        return out;
      }
      require(step->consumed <= buffered.size() - used);
      require(step->data.size() <= step->consumed);
      out.body.append(step->data);
      used += step->consumed;
      if (decoder.done() || step->consumed == 0) break;
    }
    out.done = decoder.done();
    buffered.erase(0, used);
    out.used += used;
    require(buffered.size() < kMaxLine + read_size);
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t read_size = 1 + data[0] % 32;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);

  const std::size_t end = http1::head_size(bytes);
  const std::size_t naive = bytes.find("\r\n\r\n");
  require(end == (naive == std::string_view::npos ? 0 : naive + 4));
  for (std::size_t scanned = 0; scanned < end; scanned += read_size) {
    require(http1::head_size(bytes, scanned) == end);
  }
  if (end == 0) return 0;

  http1::ResponseHead head;
  if (!http1::parse_response_head(bytes.substr(0, end), /*head_request=*/false, head).ok()) {
    return 0;
  }
  require(head.version == 10 || head.version == 11);
  require(head.status >= 100 && head.status <= 999);
  for (const http1::Field& f : head.fields) {
    require(is_valid_header_name(f.name));
    require(is_valid_header_value(f.value));
    for (const char c : f.value) {
      const auto u = static_cast<unsigned char>(c);
      require(u == '\t' || (u >= 0x20 && u != 0x7f));
    }
  }
  HttpHeaders fields;
  for (const http1::Field& f : head.fields)
    fields.add(std::string(f.name), std::string(f.value));
  if (head.framing == http1::BodyFraming::kLength) require(fields.contains("Content-Length"));
  if (head.framing == http1::BodyFraming::kChunked) {
    require(fields.contains("Transfer-Encoding") && !fields.contains("Content-Length"));
  }
  if (head.framing == http1::BodyFraming::kUntilClose) require(!head.keep_alive);

  if (head.framing != http1::BodyFraming::kChunked) return 0;
  const std::string_view body = bytes.substr(end);
  const Decoded whole = decode(body, body.size() + 1);
  const Decoded pieces = decode(body, read_size);
  require(whole.failed == pieces.failed);
  if (!whole.failed) {
    require(whole.body == pieces.body);
    require(whole.done == pieces.done);
    require(whole.used == pieces.used);
  }
  return 0;
}
