#include "engine/unicode.h"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace spillway::engine {
namespace {

bool is_continuation(unsigned char b) {
  return (b & 0xC0) == 0x80;
}

// GPT-2's bytes_to_unicode(): bytes that are printable Latin-1 keep their code point; the
// other 68 take U+0100, U+0101, ... in byte order.
struct ByteAlphabet {
  std::array<char32_t, 256> to_cp{};
  std::array<std::int16_t, 324> to_byte{};  // Indexed by code point; the largest is U+0143.

  ByteAlphabet() {
    to_byte.fill(-1);
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
      const char32_t cp = printable ? static_cast<char32_t>(b) : next++;
      to_cp[b] = cp;
      to_byte[cp] = static_cast<std::int16_t>(b);
    }
  }
};

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet alphabet;
  return alphabet;
}

}  // namespace

int utf8_sequence_length(unsigned char lead) {
  static constexpr std::array<int, 16> kLengths = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[lead >> 4];
}

char32_t decode_utf8_lenient(std::string_view text, std::size_t* offset) {
  const std::size_t i = *offset;
  const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(text[i + k]); };
  const unsigned char b0 = byte(0);
  std::size_t n = 0;
  char32_t cp = 0;
  if (b0 < 0x80) {
    *offset = i + 1;
    return b0;
  } else if ((b0 & 0xE0) == 0xC0) {
    n = 2;
    cp = b0 & 0x1F;
  } else if ((b0 & 0xF0) == 0xE0) {
    n = 3;
    cp = b0 & 0x0F;
  } else if ((b0 & 0xF8) == 0xF0) {
    n = 4;
    cp = b0 & 0x07;
  }
  // n == 0: a continuation byte or 0xF8..0xFF in lead position.
  bool ok = n != 0 && i + n <= text.size();
  for (std::size_t k = 1; ok && k < n; ++k) {
    ok = is_continuation(byte(k));
    cp = (cp << 6) | (byte(k) & 0x3F);
  }
  // llama.cpp would throw later on code points above U+10FFFF (0xF5..0xF7 leads); treating
  // them as undecodable keeps the input's other bytes intact.
  if (!ok || cp > 0x10FFFF) {
    *offset = i + 1;
    return kReplacementChar;
  }
  *offset = i + n;
  return cp;
}

std::vector<char32_t> decode_utf8_lenient(std::string_view text) {
  std::vector<char32_t> cps;
  cps.reserve(text.size());
  std::size_t offset = 0;
  while (offset < text.size())
    cps.push_back(decode_utf8_lenient(text, &offset));
  return cps;
}

void append_utf8(char32_t cp, std::string* out) {
  if (cp > 0x10FFFF) cp = kReplacementChar;
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

char32_t byte_to_unicode(std::uint8_t byte) {
  return byte_alphabet().to_cp[byte];
}

int unicode_to_byte(char32_t cp) {
  const auto& table = byte_alphabet().to_byte;
  return cp < table.size() ? table[cp] : -1;
}

Utf8Scan scan_utf8(std::string_view bytes) {
  const auto b0 = static_cast<unsigned char>(bytes[0]);
  if (b0 < 0x80) return {Utf8Scan::Kind::kValid, 1};
  // Allowed range of the second byte and the sequence length, per Unicode Table 3-7; the
  // third and fourth bytes are always 0x80..0xBF.
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  std::size_t n = 0;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    n = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    n = 3;
    if (b0 == 0xE0) lo = 0xA0;  // No overlong forms.
    if (b0 == 0xED) hi = 0x9F;  // No surrogates.
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    n = 4;
    if (b0 == 0xF0) lo = 0x90;  // No overlong forms.
    if (b0 == 0xF4) hi = 0x8F;  // Nothing above U+10FFFF.
  } else {
    return {Utf8Scan::Kind::kInvalid, 1};
  }
  for (std::size_t k = 1; k < n; ++k) {
    if (k >= bytes.size()) return {Utf8Scan::Kind::kIncomplete, k};
    const auto b = static_cast<unsigned char>(bytes[k]);
    const unsigned char min = k == 1 ? lo : 0x80;
    const unsigned char max = k == 1 ? hi : 0xBF;
    if (b < min || b > max) return {Utf8Scan::Kind::kInvalid, k};
  }
  return {Utf8Scan::Kind::kValid, n};
}

bool is_valid_utf8(std::string_view bytes) {
  for (std::size_t i = 0; i < bytes.size();) {
    const Utf8Scan scan = scan_utf8(bytes.substr(i));
    if (scan.kind != Utf8Scan::Kind::kValid) return false;
    i += scan.length;
  }
  return true;
}

}  // namespace spillway::engine
