// Helpers for the openai tests: request bodies built around one field under test, error
// assertions that check the code and the param, and JSON read back with Boost.JSON.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include <boost/json.hpp>

#include "core/status.h"

#include "openai/api_error.h"

namespace spillway::openai::testing {

// A valid chat body with `extra` fields appended: chat_body(R"("temperature": 3)").
inline std::string chat_body(std::string_view extra = {}) {
  std::string body = R"({"model":"m","messages":[{"role":"user","content":"hi"}])";
  if (!extra.empty()) body += fmt::format(",{}", extra);
  return body + "}";
}

// A valid completions body with `extra` fields appended.
inline std::string completion_body(std::string_view extra = {}) {
  std::string body = R"({"model":"m","prompt":"Once upon a time")";
  if (!extra.empty()) body += fmt::format(",{}", extra);
  return body + "}";
}

// Passes when `result` failed with `code` and names `param` (nullopt: names none).
template <typename T>
::testing::AssertionResult fails_with(const Result<T>& result, ErrorCode code,
                                      std::optional<std::string> param) {
  if (result.ok()) return ::testing::AssertionFailure() << "succeeded";
  const Error& e = result.error();
  const std::optional<std::string> got = error_param(e);
  if (e.code() != code || got != param) {
    return ::testing::AssertionFailure()
           << "got " << e.to_string() << " (param " << got.value_or("<none>") << "), expected "
           << error_code_name(code) << " about " << param.value_or("<none>");
  }
  return ::testing::AssertionSuccess();
}

// Parses JSON text that must be valid.
inline boost::json::value parse_json(std::string_view text) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(text, ec);
  EXPECT_FALSE(ec) << "invalid JSON (" << ec.message() << "): " << text;
  return v;
}

// The keys of an object, as a set, for asserting exact shapes.
inline std::set<std::string> keys_of(const boost::json::value& v) {
  std::set<std::string> keys;
  if (!v.is_object()) {
    ADD_FAILURE() << "not an object: " << boost::json::serialize(v);
    return keys;
  }
  for (const auto& kv : v.get_object())
    keys.emplace(kv.key());
  return keys;
}

inline std::string str(const boost::json::value& v) {
  return std::string(v.as_string());
}

}  // namespace spillway::openai::testing
