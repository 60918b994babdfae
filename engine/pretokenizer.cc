#include "engine/pretokenizer.h"

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/unicode.h"
#include "engine/vocab.h"

namespace spillway::engine {
namespace {

// Pieces are kept as code-point counts, in order, as llama.cpp's offset vectors are; each
// splitter refines every piece of the previous stage independently (no match crosses a piece
// boundary).
using Lengths = std::vector<std::size_t>;

// The code points of the text and their classes, with helpers that treat positions past the
// current piece's end as "nothing" (so lookaheads stop at piece boundaries).
class Piece {
 public:
  Piece(const std::vector<char32_t>& cps, const std::vector<UnicodeClass>& classes,
        std::size_t begin, std::size_t end, Lengths* out)
      : cps_(cps), classes_(classes), end_(end), prev_(begin), out_(out) {}

  [[nodiscard]] std::size_t end() const { return end_; }
  [[nodiscard]] char32_t cp(std::size_t p) const { return p < end_ ? cps_[p] : 0xFFFFFFFFu; }
  [[nodiscard]] bool letter(std::size_t p) const { return is(p, UnicodeClass::kLetter); }
  [[nodiscard]] bool number(std::size_t p) const { return is(p, UnicodeClass::kNumber); }
  [[nodiscard]] bool space(std::size_t p) const { return is(p, UnicodeClass::kWhitespace); }
  // [^\s\p{L}\p{N}]
  [[nodiscard]] bool other(std::size_t p) const {
    return p < end_ && !letter(p) && !number(p) && !space(p);
  }
  [[nodiscard]] bool newline(std::size_t p) const { return cp(p) == '\r' || cp(p) == '\n'; }

  // Ends the current word at `end` (nothing when empty).
  void emit(std::size_t end) {
    if (end > prev_) out_->push_back(end - prev_);
    prev_ = end;
  }

 private:
  [[nodiscard]] bool is(std::size_t p, UnicodeClass c) const {
    return p < end_ && classes_[p] == c;
  }

  const std::vector<char32_t>& cps_;
  const std::vector<UnicodeClass>& classes_;
  std::size_t end_;
  std::size_t prev_;
  Lengths* out_;
};

char32_t ascii_lower(char32_t c) {
  return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

// 's 't 'm 'd 're 've 'll at `pos`: the length matched, or 0.
std::size_t contraction(const Piece& s, std::size_t pos, bool ignore_case) {
  if (s.cp(pos) != '\'' || pos + 1 >= s.end()) return 0;
  const auto fold = [&](char32_t c) { return ignore_case ? ascii_lower(c) : c; };
  const char32_t c1 = fold(s.cp(pos + 1));
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  if (pos + 2 >= s.end()) return 0;
  const char32_t c2 = fold(s.cp(pos + 2));
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

// 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
// A single whitespace before a non-space matches nothing and is left as its own piece.
void split_gpt2(Piece s, std::size_t pos) {
  while (pos < s.end()) {
    if (const std::size_t n = contraction(s, pos, /*ignore_case=*/false); n > 0) {
      pos += n;
      s.emit(pos);
      continue;
    }
    const std::size_t q = s.cp(pos) == ' ' ? pos + 1 : pos;  // After the optional space.
    if (s.letter(q) || s.number(q) || s.other(q)) {
      const bool letter = s.letter(q);
      const bool number = s.number(q);
      pos = q;
      while (letter ? s.letter(pos) : number ? s.number(pos) : s.other(pos))
        ++pos;
      s.emit(pos);
      continue;
    }
    std::size_t spaces = 0;
    while (s.space(pos + spaces))
      ++spaces;
    if (spaces > 1 && pos + spaces < s.end()) {
      pos += spaces - 1;  // \s+(?!\S): leave the last space to prefix the next word.
    } else if (spaces > 0) {
      pos += spaces;
    } else {
      ++pos;
    }
    s.emit(pos);
  }
}

// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,max_digits}|
//  ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
void split_llama3(Piece s, std::size_t pos, std::size_t max_digits) {
  while (pos < s.end()) {
    if (const std::size_t n = contraction(s, pos, /*ignore_case=*/true); n > 0) {
      pos += n;
      s.emit(pos);
      continue;
    }
    if (!s.newline(pos) && !s.number(pos) && (s.letter(pos) || s.letter(pos + 1))) {
      ++pos;  // A letter, or the one non-letter prefix.
      while (s.letter(pos))
        ++pos;
      s.emit(pos);
      continue;
    }
    if (s.number(pos)) {
      std::size_t start = pos;
      while (s.number(pos)) {
        if (++pos - start >= max_digits) {
          s.emit(pos);
          start = pos;
        }
      }
      s.emit(pos);
      continue;
    }
    const std::size_t q = s.cp(pos) == ' ' ? pos + 1 : pos;
    if (s.other(q)) {
      pos = q;
      while (s.other(pos))
        ++pos;
      while (s.newline(pos))
        ++pos;
      s.emit(pos);
      continue;
    }
    std::size_t spaces = 0;
    std::size_t after_last_newline = 0;
    while (s.space(pos + spaces)) {
      if (s.newline(pos + spaces)) after_last_newline = pos + spaces + 1;
      ++spaces;
    }
    if (after_last_newline > 0) {
      pos = after_last_newline;  // \s*[\r\n]+
    } else if (spaces > 1 && pos + spaces < s.end()) {
      pos += spaces - 1;  // \s+(?!\S)
    } else if (spaces > 0) {
      pos += spaces;  // \s+
    } else {
      ++pos;
    }
    s.emit(pos);
  }
}

// [class]+ : maximal runs of code points satisfying `in_class`; the text between runs stays
// a piece.
template <typename Pred>
void split_runs(Piece s, std::size_t pos, Pred in_class) {
  while (pos < s.end()) {
    if (in_class(pos)) {
      s.emit(pos);  // The gap before the run.
      while (pos < s.end() && in_class(pos))
        ++pos;
      s.emit(pos);
    } else {
      ++pos;
    }
  }
  s.emit(pos);
}

// [0-9][0-9][0-9], leftmost matches first.
void split_digit_triples(Piece s, std::size_t pos) {
  const auto digit = [&](std::size_t p) { return s.cp(p) >= '0' && s.cp(p) <= '9'; };
  while (pos < s.end()) {
    if (digit(pos) && digit(pos + 1) && digit(pos + 2)) {
      s.emit(pos);
      pos += 3;
      s.emit(pos);
    } else {
      ++pos;
    }
  }
  s.emit(pos);
}

enum class Stage { kGpt2, kLlama3, kQwen2, kPunctuation, kNumbers, kDigitTriples };

Lengths apply(Stage stage, const std::vector<char32_t>& cps,
              const std::vector<UnicodeClass>& classes, const Lengths& pieces) {
  Lengths out;
  out.reserve(pieces.size());
  std::size_t begin = 0;
  for (const std::size_t length : pieces) {
    const Piece piece(cps, classes, begin, begin + length, &out);
    switch (stage) {
      case Stage::kGpt2:
        split_gpt2(piece, begin);
        break;
      case Stage::kLlama3:
        split_llama3(piece, begin, 3);
        break;
      case Stage::kQwen2:
        split_llama3(piece, begin, 1);
        break;
      case Stage::kPunctuation:
        // [\p{P}\$\+<=>\^~\|]+
        split_runs(piece, begin, [&](std::size_t p) {
          const char32_t c = cps[p];
          return classes[p] == UnicodeClass::kPunctuation || c == '$' || c == '+' || c == '<' ||
                 c == '=' || c == '>' || c == '^' || c == '~' || c == '|';
        });
        break;
      case Stage::kNumbers:
        split_runs(piece, begin,
                   [&](std::size_t p) { return classes[p] == UnicodeClass::kNumber; });
        break;
      case Stage::kDigitTriples:
        split_digit_triples(piece, begin);
        break;
    }
    begin += length;
  }
  return out;
}

}  // namespace

std::vector<std::string> pretokenize(std::string_view text, PreTokenizer kind) {
  const std::vector<char32_t> cps = decode_utf8_lenient(text);
  if (cps.empty()) return {};
  std::vector<UnicodeClass> classes(cps.size());
  for (std::size_t i = 0; i < cps.size(); ++i)
    classes[i] = unicode_class(cps[i]);

  Lengths pieces = {cps.size()};
  switch (kind) {
    case PreTokenizer::kGpt2:
      pieces = apply(Stage::kGpt2, cps, classes, pieces);
      break;
    case PreTokenizer::kLlama3:
      pieces = apply(Stage::kLlama3, cps, classes, pieces);
      break;
    case PreTokenizer::kQwen2:
      pieces = apply(Stage::kQwen2, cps, classes, pieces);
      break;
    case PreTokenizer::kDefault:
      for (const Stage stage :
           {Stage::kPunctuation, Stage::kGpt2, Stage::kNumbers, Stage::kDigitTriples}) {
        pieces = apply(stage, cps, classes, pieces);
      }
      break;
  }

  std::vector<std::string> words;
  words.reserve(pieces.size());
  std::size_t begin = 0;
  for (const std::size_t length : pieces) {
    std::string word;
    for (std::size_t i = begin; i < begin + length; ++i)
      append_utf8(cps[i], &word);
    words.push_back(std::move(word));
    begin += length;
  }
  return words;
}

}  // namespace spillway::engine
