// HTTP header fields: an ordered list of (name, value) pairs with case-insensitive lookup by
// name (RFC 9110 §5.1). Order and repeated fields are preserved, so a gateway can forward them.
//
// Thread-safety: a value type; no shared state.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace spillway::net {

namespace internal {
// REQUIRES: a and b both have n bytes.
[[nodiscard]] bool iequals_same_size(const char* a, const char* b, std::size_t n);
}  // namespace internal

// ASCII case-insensitive equality, for header names and tokens. Inline: most comparisons end at
// the sizes (a header list searched for one name).
[[nodiscard]] inline bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && internal::iequals_same_size(a.data(), b.data(), a.size());
}

// A field name is a non-empty RFC 9110 token; a value has no CR, LF or NUL (so it cannot
// inject a header line) and no leading or trailing whitespace is required of it.
[[nodiscard]] bool is_valid_header_name(std::string_view name);
[[nodiscard]] bool is_valid_header_value(std::string_view value);

// True when the comma-separated list in `value` contains `token` (case-insensitive), as in
// "Connection: keep-alive, Upgrade".
[[nodiscard]] bool header_list_contains(std::string_view value, std::string_view token);

class HttpHeaders {
 public:
  using Field = std::pair<std::string, std::string>;

  HttpHeaders() = default;
  HttpHeaders(std::initializer_list<Field> fields) : fields_(fields) {}

  // The first value of `name`, if present. The view is valid until the headers change.
  [[nodiscard]] std::optional<std::string_view> get(std::string_view name) const;
  // Every value of `name`, in order.
  [[nodiscard]] std::vector<std::string_view> get_all(std::string_view name) const;
  [[nodiscard]] bool contains(std::string_view name) const { return get(name).has_value(); }

  // Appends a field (keeps existing fields of the same name).
  void add(std::string name, std::string value);
  // Makes room for `fields` fields in all (no reallocation while adding up to that many).
  void reserve(std::size_t fields) { fields_.reserve(fields); }
  // Replaces every field of `name` with one field, kept at the position of the first.
  void set(std::string_view name, std::string value);
  // Removes every field of `name`; returns how many were removed.
  std::size_t remove(std::string_view name);

  [[nodiscard]] std::size_t size() const { return fields_.size(); }
  [[nodiscard]] bool empty() const { return fields_.empty(); }
  [[nodiscard]] auto begin() const { return fields_.begin(); }
  [[nodiscard]] auto end() const { return fields_.end(); }

  friend bool operator==(const HttpHeaders&, const HttpHeaders&) = default;

 private:
  std::vector<Field> fields_;
};

}  // namespace spillway::net
