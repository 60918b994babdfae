#include "engine/tokenizer.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"

#include "engine/vocab.h"

namespace spillway::engine {
namespace {

// A stretch of the input: plain text [offset, offset + length), or a special token.
struct Fragment {
  std::int32_t token = -1;  // -1: plain text.
  std::size_t offset = 0;
  std::size_t length = 0;
};

bool is_special_type(TokenType t) {
  return t == TokenType::kControl || t == TokenType::kUnknown || t == TokenType::kUserDefined;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

Tokenizer::Tokenizer(Vocab vocab) : vocab_(std::move(vocab)) {
  for (std::int32_t id = 0; id < vocab_.size(); ++id) {
    if (is_special_type(vocab_.types[id])) special_tokens_.push_back(id);
  }
  // Longest first, so that a token is never cut inside a longer one that contains it;
  // stable, so that equal lengths go by id (llama.cpp leaves that order unspecified).
  std::stable_sort(special_tokens_.begin(), special_tokens_.end(),
                   [&](std::int32_t a, std::int32_t b) {
                     return vocab_.tokens[a].size() > vocab_.tokens[b].size();
                   });
}

void Tokenizer::cache_pieces() {
  pieces_.resize(vocab_.tokens.size());
  for (std::int32_t id = 0; id < vocab_.size(); ++id) {
    const std::string& text = vocab_.tokens[id];
    switch (vocab_.types[id]) {
      case TokenType::kControl:
      case TokenType::kUnknown:
      case TokenType::kUserDefined:
        pieces_[id] = text;
        break;
      case TokenType::kNormal:
        pieces_[id] = normal_piece(id);
        break;
      case TokenType::kByte: {
        // "<0xNN>"; a malformed byte token decodes to nothing.
        const int hi = text.size() == 6 ? hex_value(text[3]) : -1;
        const int lo = text.size() == 6 ? hex_value(text[4]) : -1;
        if (hi >= 0 && lo >= 0 && text.starts_with("<0x") && text.back() == '>') {
          pieces_[id] = std::string(1, static_cast<char>(hi * 16 + lo));
        }
        break;
      }
      case TokenType::kUnused:
      case TokenType::kUndefined:
        break;  // Rendered as nothing, as llama.cpp does.
    }
  }
}

std::string Tokenizer::token_to_piece(std::int32_t id, bool render_special) const {
  if (!vocab_.contains(id)) return {};
  const TokenType t = vocab_.types[id];
  if (!render_special && (t == TokenType::kControl || t == TokenType::kUnknown)) return {};
  return pieces_[id];
}

Result<std::vector<std::int32_t>> Tokenizer::encode(std::string_view text, bool add_special,
                                                    bool parse_special) const {
  if (text.size() > kMaxEncodeBytes) {
    return make_error(ErrorCode::kOutOfRange, "text to encode is {} bytes (limit {})", text.size(),
                      kMaxEncodeBytes);
  }
  // Cut out special tokens, longest first, as llama.cpp's tokenizer_st_partition.
  std::vector<Fragment> fragments;
  if (!text.empty()) fragments.push_back({-1, 0, text.size()});
  std::vector<Fragment> next;
  for (const std::int32_t id : special_tokens_) {
    const TokenType t = vocab_.types[id];
    if (!parse_special && (t == TokenType::kControl || t == TokenType::kUnknown)) continue;
    const std::string& special = vocab_.tokens[id];
    bool found = false;
    next.clear();
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      const std::size_t end = f.offset + f.length;
      const std::string_view region = text.substr(0, end);
      std::size_t pos = f.offset;
      for (std::size_t hit = region.find(special, pos); hit != std::string_view::npos;
           hit = region.find(special, pos)) {
        found = true;
        if (hit > pos) next.push_back({-1, pos, hit - pos});
        next.push_back({id, 0, 0});
        pos = hit + special.size();
      }
      if (pos < end) next.push_back({-1, pos, end - pos});
    }
    if (found) fragments.swap(next);
  }

  std::vector<std::int32_t> out;
  out.reserve(text.size() / 2 + 2);
  if (add_special && vocab_.add_bos) out.push_back(vocab_.bos_id);
  bool starts_segment = true;
  for (const Fragment& f : fragments) {
    if (f.token >= 0) {
      out.push_back(f.token);
      starts_segment = true;
    } else {
      SPW_TRY(encode_fragment(text.substr(f.offset, f.length), starts_segment, &out));
      starts_segment = false;
    }
  }
  if (add_special && vocab_.add_eos) out.push_back(vocab_.eos_id);
  return out;
}

Result<std::unique_ptr<Tokenizer>> make_tokenizer(Vocab vocab) {
  SPW_TRY(finalize_vocab(vocab));
  switch (vocab.kind) {
    case VocabKind::kSpm:
      return make_spm_tokenizer(std::move(vocab));
    case VocabKind::kBpe:
      return make_bpe_tokenizer(std::move(vocab));
  }
  return make_error(ErrorCode::kInternal, "unknown vocabulary kind");
}

}  // namespace spillway::engine
