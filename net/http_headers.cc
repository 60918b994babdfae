#include "net/http_headers.h"

#include <algorithm>
#include <cstddef>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "net/http_chars.h"

namespace spillway::net {
namespace {

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

// How many bytes at the front of p[0, n), in whole blocks of 16, hold no CR, LF or NUL (the
// bytes a field value must not have); npos when a block holds one.
#if defined(__SSE2__)
std::size_t clean_blocks(const char* p, std::size_t n) {
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  const __m128i nul = _mm_setzero_si128();
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const __m128i bad = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, cr), _mm_cmpeq_epi8(v, lf)),
                                     _mm_cmpeq_epi8(v, nul));
    if (_mm_movemask_epi8(bad) != 0) return std::string_view::npos;
  }
  return i;
}
#else
std::size_t clean_blocks(const char*, std::size_t) {
  return 0;
}
#endif

}  // namespace

bool internal::iequals_same_size(const char* a, const char* b, std::size_t n) {
  if (n == 0) return true;  // An empty view's data may be null, which memcmp must not get.
  if (std::memcmp(a, b, n) == 0) return true;  // The usual case: the same spelling.
  for (std::size_t i = 0; i < n; ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

bool is_valid_header_name(std::string_view name) {
  bool token = !name.empty();
  for (const char c : name)
    token &= internal::is_token_char(c);  // No branch per byte: names are short.
  return token;
}

bool is_valid_header_value(std::string_view value) {
  const std::size_t checked = clean_blocks(value.data(), value.size());
  if (checked == std::string_view::npos) return false;
  bool ok = true;
  for (const char c : value.substr(checked))
    ok &= c != '\r' && c != '\n' && c != '\0';
  return ok;
}

bool header_list_contains(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    const std::string_view item = internal::trim_ows(value.substr(0, comma));
    if (iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

std::optional<std::string_view> HttpHeaders::get(std::string_view name) const {
  for (const auto& [n, v] : fields_) {
    if (iequals(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}

std::vector<std::string_view> HttpHeaders::get_all(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& [n, v] : fields_) {
    if (iequals(n, name)) out.emplace_back(v);
  }
  return out;
}

void HttpHeaders::add(std::string name, std::string value) {
  fields_.emplace_back(std::move(name), std::move(value));
}

void HttpHeaders::set(std::string_view name, std::string value) {
  auto first = std::find_if(fields_.begin(), fields_.end(),
                            [&](const Field& f) { return iequals(f.first, name); });
  if (first == fields_.end()) {
    fields_.emplace_back(std::string(name), std::move(value));
    return;
  }
  first->second = std::move(value);
  auto rest = std::remove_if(std::next(first), fields_.end(),
                             [&](const Field& f) { return iequals(f.first, name); });
  fields_.erase(rest, fields_.end());
}

std::size_t HttpHeaders::remove(std::string_view name) {
  const std::size_t before = fields_.size();
  std::erase_if(fields_, [&](const Field& f) { return iequals(f.first, name); });
  return before - fields_.size();
}

}  // namespace spillway::net
