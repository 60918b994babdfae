// SentencePiece-style tokenization of "llama" vocabularies, as llama.cpp's
// llm_tokenizer_spm_session: spaces become U+2581, a space is prepended to text that starts
// a segment (add_space_prefix), then adjacent symbols (initially UTF-8 characters) are merged
// greedily, the pair whose merged text is the highest-scoring token first (ties: leftmost).
// Symbols that are not tokens in the end fall back to byte tokens "<0xNN>".
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

#include "engine/tokenizer.h"
#include "engine/unicode.h"
#include "engine/vocab.h"

namespace spillway::engine {
namespace {

constexpr std::string_view kSpaceEscape = "\xE2\x96\x81";  // U+2581

struct Symbol {
  std::int32_t prev;
  std::int32_t next;
  std::size_t offset;  // Into the escaped text.
  std::size_t length;  // 0 once merged into its left neighbour.
};

struct Bigram {
  std::int32_t left;
  std::int32_t right;
  float score;
  std::size_t length;  // Of the merged text; a mismatch later means the bigram is stale.
};

// Highest score first; equal scores: leftmost first.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

std::string replace_spaces(std::string_view text, bool prefix_space) {
  std::string out;
  out.reserve(text.size() + 8);
  if (prefix_space) out.append(kSpaceEscape);
  for (const char c : text) {
    if (c == ' ') {
      out.append(kSpaceEscape);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::string unescape_spaces(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    if (text.substr(i, kSpaceEscape.size()) == kSpaceEscape) {
      out.push_back(' ');
      i += kSpaceEscape.size();
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

class SpmTokenizer final : public Tokenizer {
 public:
  explicit SpmTokenizer(Vocab vocab) : Tokenizer(std::move(vocab)) {
    // llama.cpp's byte_to_token: "<0xNN>" (upper-case hex), else the byte as a one-character
    // token. Where neither exists llama.cpp throws; we use the unknown token, or fail.
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const std::string name = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
      std::int32_t id = vocab_.find(name);
      if (id < 0) id = vocab_.find(std::string(1, static_cast<char>(b)));
      if (id < 0) id = vocab_.unk_id;
      byte_tokens_[b] = id;
    }
    cache_pieces();
  }

 protected:
  Status encode_fragment(std::string_view fragment, bool starts_segment,
                         std::vector<std::int32_t>* out) const override {
    const std::string text = replace_spaces(fragment, vocab_.add_space_prefix && starts_segment);

    // One symbol per UTF-8 character (by lead byte; a truncated tail is its own symbol).
    std::vector<Symbol> symbols;
    symbols.reserve(text.size());
    for (std::size_t offset = 0; offset < text.size();) {
      const auto index = static_cast<std::int32_t>(symbols.size());
      const std::size_t length = std::min<std::size_t>(
          utf8_sequence_length(static_cast<unsigned char>(text[offset])), text.size() - offset);
      offset += length;
      symbols.push_back(
          {index - 1, offset == text.size() ? -1 : index + 1, offset - length, length});
    }

    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    const auto try_add = [&](std::int32_t left, std::int32_t right) {
      if (left < 0 || right < 0) return;
      const std::string_view merged(text.data() + symbols[left].offset,
                                    symbols[left].length + symbols[right].length);
      const std::int32_t id = vocab_.find(merged);
      if (id < 0) return;
      queue.push({left, right, vocab_.scores[id], merged.size()});
    };
    for (std::size_t i = 1; i < symbols.size(); ++i) {
      try_add(static_cast<std::int32_t>(i - 1), static_cast<std::int32_t>(i));
    }
    while (!queue.empty()) {
      const Bigram bigram = queue.top();
      queue.pop();
      Symbol& left = symbols[bigram.left];
      Symbol& right = symbols[bigram.right];
      if (left.length == 0 || right.length == 0 || left.length + right.length != bigram.length) {
        continue;  // One side was merged elsewhere since this bigram was queued.
      }
      left.length += right.length;
      right.length = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = bigram.left;
      try_add(left.prev, bigram.left);
      try_add(bigram.left, left.next);
    }

    // Every merged symbol is a token (merges only form tokens), so the only symbols that
    // are not are single characters: emit those byte by byte. (llama.cpp's rev_merge
    // re-segmentation path cannot trigger for this reason.)
    for (std::int32_t i = 0; i != -1 && !symbols.empty(); i = symbols[i].next) {
      const std::string_view piece(text.data() + symbols[i].offset, symbols[i].length);
      if (const std::int32_t id = vocab_.find(piece); id >= 0) {
        out->push_back(id);
        continue;
      }
      for (const char c : piece) {
        const std::int32_t id = byte_tokens_[static_cast<unsigned char>(c)];
        if (id < 0) {
          return make_error(ErrorCode::kFailedPrecondition,
                            "cannot encode byte 0x{:02X}: the vocabulary has no byte token "
                            "for it and no unknown token",
                            static_cast<unsigned char>(c));
        }
        out->push_back(id);
      }
    }
    return Status();
  }

  std::string normal_piece(std::int32_t id) const override {
    return unescape_spaces(vocab_.tokens[id]);
  }

 private:
  std::array<std::int32_t, 256> byte_tokens_{};
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> make_spm_tokenizer(Vocab vocab) {
  return std::unique_ptr<Tokenizer>(std::make_unique<SpmTokenizer>(std::move(vocab)));
}

}  // namespace spillway::engine
