#include "engine/detokenizer.h"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "engine/tokenizer.h"
#include "engine/unicode.h"

namespace spillway::engine {
namespace {

constexpr std::string_view kReplacementUtf8 = "\xEF\xBF\xBD";  // U+FFFD

// Moves the complete, valid prefix of `*pending` to `*out` (ill-formed parts as U+FFFD) and
// leaves in `*pending` only an incomplete last character, or nothing when `final`.
void drain(std::string* pending, bool final, std::string* out) {
  std::size_t i = 0;
  while (i < pending->size()) {
    const Utf8Scan scan = scan_utf8(std::string_view(*pending).substr(i));
    if (scan.kind == Utf8Scan::Kind::kIncomplete && !final) break;
    if (scan.kind == Utf8Scan::Kind::kValid) {
      out->append(*pending, i, scan.length);
    } else {
      out->append(kReplacementUtf8);
    }
    i += scan.length;
  }
  pending->erase(0, i);
}

}  // namespace

StreamingDetokenizer::StreamingDetokenizer(const Tokenizer& tokenizer, DetokenizeOptions options)
    : tokenizer_(&tokenizer), options_(options) {}

std::string StreamingDetokenizer::push(std::int32_t id) {
  const Vocab& vocab = tokenizer_->vocab();
  if (!vocab.contains(id)) return {};  // Renders as nothing and does not count as first.
  std::string piece = tokenizer_->token_to_piece(id, options_.render_special);
  if (at_start_ && !(vocab.bos_id >= 0 && id == vocab.bos_id)) {
    at_start_ = false;
    if (options_.strip_leading_space && vocab.add_space_prefix && !piece.empty() &&
        piece.front() == ' ') {
      piece.erase(0, 1);
    }
  }
  pending_.append(piece);
  std::string out;
  drain(&pending_, /*final=*/false, &out);
  return out;
}

std::string StreamingDetokenizer::flush() {
  std::string out;
  drain(&pending_, /*final=*/true, &out);
  at_start_ = true;
  return out;
}

std::string detokenize(const Tokenizer& tokenizer, std::span<const std::int32_t> ids,
                       DetokenizeOptions options) {
  StreamingDetokenizer stream(tokenizer, options);
  std::string text;
  for (const std::int32_t id : ids)
    text.append(stream.push(id));
  text.append(stream.flush());
  return text;
}

}  // namespace spillway::engine
