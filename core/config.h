// Configuration files (TOML) with validation errors that name the file, line, column and key:
//   fleet.toml:12:9: providers.azure.regions[0].pools[1].gpus: expected an integer, got a string
//
// A `ConfigDocument` owns a parsed file; `ConfigTable` is a cheap view of one table in it and
// is valid only while its document lives. Getters return typed values or such errors; a
// component validates its own section with them and with `check_keys`, which rejects unknown
// keys (a typo in a config file must be an error, not a silently ignored setting).
//
// Thread-safety: a document and its views are immutable after parsing; safe to read
// concurrently.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace spillway {

class ConfigDocument;

class ConfigTable {
 public:
  // Dotted path of this table from the root ("" for the root), e.g. "providers.azure".
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] bool has(std::string_view key) const;
  // Keys, sorted.
  [[nodiscard]] std::vector<std::string> keys() const;

  // Required values: NotFound-style error (kInvalidArgument) naming the key when absent.
  [[nodiscard]] Result<std::string> string(std::string_view key) const;
  [[nodiscard]] Result<std::int64_t> integer(std::string_view key, std::int64_t min,
                                             std::int64_t max) const;
  [[nodiscard]] Result<double> number(std::string_view key, double min, double max) const;
  [[nodiscard]] Result<bool> boolean(std::string_view key) const;
  [[nodiscard]] Result<ConfigTable> table(std::string_view key) const;
  [[nodiscard]] Result<std::vector<ConfigTable>> tables(std::string_view key) const;  // [[key]]
  [[nodiscard]] Result<std::vector<std::string>> strings(std::string_view key) const;

  // Optional values: the default when absent, an error when present but invalid.
  [[nodiscard]] Result<std::string> string_or(std::string_view key, std::string fallback) const;
  [[nodiscard]] Result<std::int64_t> integer_or(std::string_view key, std::int64_t fallback,
                                                std::int64_t min, std::int64_t max) const;
  [[nodiscard]] Result<double> number_or(std::string_view key, double fallback, double min,
                                         double max) const;
  [[nodiscard]] Result<bool> boolean_or(std::string_view key, bool fallback) const;

  // Fails on the first key not in `allowed`, naming it and where it is.
  [[nodiscard]] Status check_keys(std::initializer_list<std::string_view> allowed) const;

  // An error located at `key` of this table (or at the table itself when the key is absent),
  // for validation rules beyond types and ranges.
  [[nodiscard]] Error error_at(std::string_view key, std::string_view message) const;

 private:
  friend class ConfigDocument;
  ConfigTable(std::shared_ptr<const struct ConfigState> state, const void* table, std::string path)
      : state_(std::move(state)), table_(table), path_(std::move(path)) {}

  [[nodiscard]] const void* node(std::string_view key) const;
  [[nodiscard]] std::string key_path(std::string_view key) const;
  [[nodiscard]] Error located(const void* node, std::string_view key,
                              std::string_view message) const;
  [[nodiscard]] Error missing(std::string_view key) const;
  [[nodiscard]] Error wrong_type(const void* node, std::string_view key,
                                 std::string_view expected) const;

  std::shared_ptr<const struct ConfigState> state_;
  const void* table_;  // toml::table, owned by state_.
  std::string path_;
};

class ConfigDocument {
 public:
  // Reads and parses a TOML file; syntax errors carry file:line:column.
  [[nodiscard]] static Result<ConfigDocument> load_file(const std::string& path);
  // Parses TOML text; `source_name` stands in for the file name in errors.
  [[nodiscard]] static Result<ConfigDocument> parse(std::string_view text, std::string source_name);

  [[nodiscard]] ConfigTable root() const;
  [[nodiscard]] const std::string& source_name() const;

 private:
  explicit ConfigDocument(std::shared_ptr<const ConfigState> state) : state_(std::move(state)) {}
  std::shared_ptr<const ConfigState> state_;
};

// Upper bound on a configuration file's size: configs are small; a huge file is a mistake.
inline constexpr std::size_t kMaxConfigFileBytes = 16u << 20;

}  // namespace spillway
