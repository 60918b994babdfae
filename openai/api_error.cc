#include "openai/api_error.h"

#include <fmt/core.h>

#include <cassert>

#include "openai/json_writer.h"

namespace spillway::openai {
namespace {

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9');
}

}  // namespace

bool is_param_path(std::string_view text) {
  // Grammar: name ("." name)* ("[" digits "]")* with indexes allowed after any name.
  std::size_t i = 0;
  bool expect_name = true;
  while (true) {
    if (expect_name) {
      if (i >= text.size() || !is_name_start(text[i])) return false;
      while (i < text.size() && is_name_char(text[i]))
        ++i;
    }
    while (i < text.size() && text[i] == '[') {
      const std::size_t digits = ++i;
      while (i < text.size() && text[i] >= '0' && text[i] <= '9')
        ++i;
      if (i == digits || i >= text.size() || text[i] != ']') return false;
      ++i;
    }
    if (i == text.size()) return true;
    if (text[i] != '.') return false;
    ++i;
    expect_name = true;
  }
}

Error request_error(ErrorCode code, std::string_view param, std::string_view problem) {
  assert(is_param_path(param));
  return Error(code, fmt::format("{}: {}", param, problem));
}

std::optional<std::string> error_param(const Error& error) {
  const std::string& message = error.message();
  const std::size_t colon = message.find(": ");
  if (colon == std::string::npos) return std::nullopt;
  std::string_view candidate(message.data(), colon);
  if (!is_param_path(candidate)) return std::nullopt;
  return std::string(candidate);
}

Error with_param(const Error& error, std::string_view param) {
  return request_error(error.code(), param, error.message());
}

ApiError to_api_error(const Error& error, std::optional<std::string> param) {
  const HttpErrorMapping mapping = http_error_mapping(error.code());
  ApiError api;
  api.http_status = mapping.http_status;
  api.type = std::string(mapping.openai_type);
  api.message = error.message();
  api.param = std::move(param);
  return api;
}

ApiError to_api_error(const Error& error) {
  return to_api_error(error, error_param(error));
}

std::string render_error_body(const ApiError& error) {
  std::string out;
  out.reserve(96 + error.message.size());
  JsonWriter w(out);
  w.begin_object();
  w.key("error");
  w.begin_object();
  w.field("message", error.message);
  w.field("type", error.type);
  w.key("param");
  if (error.param) {
    w.string(*error.param);
  } else {
    w.null();
  }
  w.key("code");
  if (error.code) {
    w.string(*error.code);
  } else {
    w.null();
  }
  w.end_object();
  w.end_object();
  return out;
}

}  // namespace spillway::openai
