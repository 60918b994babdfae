// Helpers for the Jinja interpreter tests: render a template source in one call, and build
// values tersely.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "serve/jinja_eval.h"
#include "serve/jinja_parser.h"

namespace spillway::serve::jinja::testing {

inline Result<std::string> try_render(std::string_view source, const Variables& variables = {},
                                      const RenderOptions& options = {}) {
  SPW_ASSIGN_OR_RETURN(const Program program, parse_template(source, options.limits));
  return render(program, variables, options);
}

// The rendered text; a failure is a test failure naming the template and the error.
inline std::string render_ok(std::string_view source, const Variables& variables = {},
                             const RenderOptions& options = {}) {
  auto r = try_render(source, variables, options);
  EXPECT_TRUE(r.ok()) << "template: " << source << "\nerror: " << r.status().error().to_string();
  return r.ok() ? *r : std::string("<error>");
}

// The error; rendering successfully is a test failure.
inline Error render_error(std::string_view source, const Variables& variables = {},
                          const RenderOptions& options = {}) {
  auto r = try_render(source, variables, options);
  EXPECT_FALSE(r.ok()) << "template: " << source << "\nrendered: " << (r.ok() ? *r : "");
  return r.ok() ? Error(ErrorCode::kOk, "") : r.error();
}

inline Value str(std::string s) {
  return Value::string(std::move(s));
}

inline Value list(std::initializer_list<Value> items) {
  return Value::list(std::vector<Value>(items));
}

inline Value dict(std::initializer_list<std::pair<std::string, Value>> items) {
  std::vector<std::pair<Value, Value>> pairs;
  for (const auto& [key, value] : items)
    pairs.emplace_back(Value::string(key), value);
  return Value::dict(std::move(pairs));
}

}  // namespace spillway::serve::jinja::testing
