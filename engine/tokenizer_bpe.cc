// GPT-2 byte-level BPE for "gpt2" vocabularies, as llama.cpp's llm_tokenizer_bpe_session:
// the text is split into words by the vocabulary's pre-tokenizer (pretokenizer.h), each
// word's bytes are mapped to GPT-2's printable byte alphabet, and within each word adjacent
// symbols (initially characters of that alphabet) are merged, the pair with the lowest merge
// rank first (ties: leftmost), until no listed merge applies.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"

#include "engine/pretokenizer.h"
#include "engine/tokenizer.h"
#include "engine/unicode.h"
#include "engine/vocab.h"

namespace spillway::engine {
namespace {

struct Symbol {
  std::int32_t prev;
  std::int32_t next;
  std::size_t offset;  // Into the encoded word.
  std::size_t length;  // 0 once merged into its left neighbour.
};

struct Bigram {
  std::int32_t left;
  std::int32_t right;
  std::int32_t rank;
  std::string text;  // The merged text; if the symbols changed since, the bigram is stale.
};

// Lowest rank first; equal ranks: leftmost first.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

// A merge pair as one key: "<length of left>:" + left + right, unambiguous for any texts.
void pair_key(std::string_view left, std::string_view right, std::string* key) {
  key->assign(std::to_string(left.size()));
  key->push_back(':');
  key->append(left);
  key->append(right);
}

class BpeTokenizer final : public Tokenizer {
 public:
  explicit BpeTokenizer(Vocab vocab) : Tokenizer(std::move(vocab)) {
    // "left right", split at the first space after the first character, as llama.cpp does;
    // the first listing of a pair fixes its rank.
    ranks_.reserve(vocab_.merges.size());
    std::string key;
    for (std::size_t i = 0; i < vocab_.merges.size(); ++i) {
      const std::string_view merge = vocab_.merges[i];
      const std::size_t space = merge.empty() ? std::string_view::npos : merge.find(' ', 1);
      if (space == std::string_view::npos) continue;  // llama.cpp files it as ("", "").
      pair_key(merge.substr(0, space), merge.substr(space + 1), &key);
      ranks_.emplace(key, static_cast<std::int32_t>(i));
    }
    cache_pieces();
  }

 protected:
  Status encode_fragment(std::string_view fragment, bool /*starts_segment*/,
                         std::vector<std::int32_t>* out) const override {
    std::string key;
    for (const std::string& word : pretokenize(fragment, vocab_.pre_tokenizer)) {
      std::string encoded;
      encoded.reserve(word.size() * 2);
      for (const char c : word)
        append_utf8(byte_to_unicode(static_cast<std::uint8_t>(c)), &encoded);
      encode_word(encoded, &key, out);
    }
    return Status();
  }

  // The token text is in the byte alphabet; map it back to bytes. A character outside the
  // alphabet is rendered as llama.cpp's llama_decode_text renders it.
  std::string normal_piece(std::int32_t id) const override {
    const std::string& text = vocab_.tokens[id];
    std::string out;
    out.reserve(text.size());
    for (const char32_t cp : decode_utf8_lenient(text)) {
      if (const int byte = unicode_to_byte(cp); byte >= 0) {
        out.push_back(static_cast<char>(byte));
        continue;
      }
      std::string utf8;
      append_utf8(cp, &utf8);
      out.append("[UNK_BYTE_0x");
      for (const char c : utf8)
        out.append(fmt::format("{:02x}", static_cast<unsigned char>(c)));
      out.append(text);
      out.push_back(']');
    }
    return out;
  }

 private:
  void encode_word(const std::string& word, std::string* key,
                   std::vector<std::int32_t>* out) const {
    if (vocab_.ignore_merges) {
      if (const std::int32_t id = vocab_.find(word); id >= 0) {
        out->push_back(id);
        return;
      }
    }
    std::vector<Symbol> symbols;
    symbols.reserve(word.size());
    for (std::size_t offset = 0; offset < word.size();) {
      const auto index = static_cast<std::int32_t>(symbols.size());
      const std::size_t length = std::min<std::size_t>(
          utf8_sequence_length(static_cast<unsigned char>(word[offset])), word.size() - offset);
      offset += length;
      symbols.push_back(
          {index - 1, offset == word.size() ? -1 : index + 1, offset - length, length});
    }
    const auto text_of = [&](const Symbol& s) {
      return std::string_view(word.data() + s.offset, s.length);
    };

    std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
    const auto try_add = [&](std::int32_t left, std::int32_t right) {
      if (left < 0 || right < 0) return;
      const std::string_view l = text_of(symbols[left]);
      const std::string_view r = text_of(symbols[right]);
      pair_key(l, r, key);
      const auto it = ranks_.find(*key);
      if (it == ranks_.end()) return;
      std::string merged(l);
      merged.append(r);
      queue.push({left, right, it->second, std::move(merged)});
    };
    for (std::size_t i = 1; i < symbols.size(); ++i) {
      try_add(static_cast<std::int32_t>(i - 1), static_cast<std::int32_t>(i));
    }
    while (!queue.empty()) {
      const Bigram bigram = queue.top();
      queue.pop();
      Symbol& left = symbols[bigram.left];
      Symbol& right = symbols[bigram.right];
      if (left.length == 0 || right.length == 0) continue;
      if (left.length + right.length != bigram.text.size() ||
          std::string_view(word.data() + left.offset, left.length + right.length) != bigram.text) {
        continue;  // Stale: a side changed since this bigram was queued.
      }
      left.length += right.length;
      right.length = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = bigram.left;
      try_add(left.prev, bigram.left);
      try_add(bigram.left, left.next);
    }

    for (std::int32_t i = 0; i != -1 && !symbols.empty(); i = symbols[i].next) {
      const std::string_view piece = text_of(symbols[i]);
      if (const std::int32_t id = vocab_.find(piece); id >= 0) {
        out->push_back(id);
        continue;
      }
      // Not a token: llama.cpp looks each raw byte up as a one-character token and drops
      // the bytes that are not (a vocabulary with merges that do not form tokens).
      for (const char c : piece) {
        if (const std::int32_t id = vocab_.find(std::string_view(&c, 1)); id >= 0) {
          out->push_back(id);
        }
      }
    }
  }

  std::unordered_map<std::string, std::int32_t, TextHash, std::equal_to<>> ranks_;
};

}  // namespace

Result<std::unique_ptr<Tokenizer>> make_bpe_tokenizer(Vocab vocab) {
  return std::unique_ptr<Tokenizer>(std::make_unique<BpeTokenizer>(std::move(vocab)));
}

}  // namespace spillway::engine
