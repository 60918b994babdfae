// libFuzzer target for serve's Jinja interpreter: any bytes as a template must parse or fail
// with an Error, and any template that parses must render or fail with an Error, within
// small limits, never crashing, hanging or leaking (ASan and UBSan check the rest).
//
// Seeds: the real chat templates in tests/serve/data/*.jinja; fuzz/jinja_fuzz.dict holds the
// syntax's keywords.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "serve/jinja_eval.h"
#include "serve/jinja_parser.h"

namespace {

using spillway::serve::jinja::JinjaLimits;
using spillway::serve::jinja::RenderOptions;
using spillway::serve::jinja::Value;
using spillway::serve::jinja::Variables;

Value message(const char* role, const char* content) {
  return Value::dict({{Value::string("role"), Value::string(role)},
                      {Value::string("content"), Value::string(content)}});
}

Variables variables() {
  return {
      {"messages", Value::list({message("system", "Be brief."), message("user", " Hi \xC3\xA9 "),
                                message("assistant", "Hello!"), message("user", "2+2?")})},
      {"bos_token", Value::string("<s>")},
      {"eos_token", Value::string("</s>")},
      {"add_generation_prompt", Value::boolean(true)},
      {"tools", Value::none()},
      {"documents", Value::none()},
      {"n", Value::integer(3)},
      {"f", Value::number(-2.5)},
  };
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const Variables kVariables = variables();
  RenderOptions options;
  JinjaLimits& limits = options.limits;
  limits.max_template_bytes = 8192;
  limits.max_nesting_depth = 24;
  limits.max_syntax_height = 64;
  limits.max_recursion_depth = 96;
  limits.max_output_bytes = 1 << 16;
  limits.max_collection_items = 2000;
  limits.max_loop_iterations = 2000;
  limits.max_steps = 200'000;
  options.unix_time_s = 1'700'000'000;
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  auto program = spillway::serve::jinja::parse_template(source, limits);
  if (!program.ok()) return 0;
  auto text = spillway::serve::jinja::render(*program, kVariables, options);
  if (text.ok() && text->size() > limits.max_output_bytes) __builtin_trap();
  return 0;
}
