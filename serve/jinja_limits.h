// Limits on what a Jinja template may cost. Chat templates come from model files, which are
// untrusted input, and a render runs on every request, so every resource a template can consume
// is bounded; exceeding a bound is an error (kOutOfRange), never a hang or a crash.
//
// The defaults leave ample room for every real chat template (the largest known ones are tens
// of KiB and nest blocks less than ten deep) and for conversations that fill a large context.
#pragma once

#include <cstddef>
#include <cstdint>

namespace spillway::serve::jinja {

struct JinjaLimits {
  // Size of the template source.
  std::size_t max_template_bytes = 1u << 20;
  // Parse time: blocks nested in blocks, and brackets, calls and subscripts nested in one
  // expression. Render time: lists and dicts nested in one value.
  std::size_t max_nesting_depth = 64;
  // Parse time: height of an expression's syntax tree (a chain `a + b + c ...` of N terms has
  // height N), which bounds the recursion that evaluates it.
  std::size_t max_syntax_height = 256;
  // Render time: depth of recursive evaluation, macro calls included.
  std::size_t max_recursion_depth = 512;
  // The rendered text, and any single string a render builds on the way.
  std::size_t max_output_bytes = 8u << 20;
  // Items of any single list or dict a render builds (range(), +, *, filters).
  std::size_t max_collection_items = 100'000;
  // Iterations of all loops of one render together.
  std::size_t max_loop_iterations = 1'000'000;
  // Work of one render: one step per statement or expression evaluated, plus one step per 64
  // bytes of strings and per item of collections built. Stops templates that loop over
  // expensive operations, such as growing a string quadratically.
  std::uint64_t max_steps = 50'000'000;
};

}  // namespace spillway::serve::jinja
