// What one render has spent of its JinjaLimits: steps, loop iterations and recursion depth,
// plus the checks on the size of every string and collection it builds. The evaluator and
// the builtin functions charge the same budget, so a template cannot escape the limits by
// moving work into filters.
//
// Every check returns kOutOfRange naming the limit, so a template that exceeds one fails fast
// instead of running long or allocating without bound.
//
// Thread-safety: one per render.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/status.h"

#include "serve/jinja_limits.h"
#include "serve/jinja_value.h"

namespace spillway::serve::jinja {

class Budget {
 public:
  explicit Budget(const JinjaLimits& limits) : limits_(limits) {}

  [[nodiscard]] const JinjaLimits& limits() const { return limits_; }

  [[nodiscard]] Status step(std::uint64_t n = 1) {
    steps_ += n;
    if (steps_ > limits_.max_steps)
      return make_error(ErrorCode::kOutOfRange, "template exceeded {} evaluation steps",
                        limits_.max_steps);
    return {};
  }

  // A string of `bytes` is about to be built: checks its size and charges for it.
  [[nodiscard]] Status string(std::size_t bytes) {
    if (bytes > limits_.max_output_bytes)
      return make_error(ErrorCode::kOutOfRange, "template built a string of {} bytes, over {}",
                        bytes, limits_.max_output_bytes);
    return step(bytes / 64);
  }

  // A collection of `items` is about to be built.
  [[nodiscard]] Status items(std::size_t count) {
    if (count > limits_.max_collection_items)
      return make_error(ErrorCode::kOutOfRange, "template built a collection of {} items, over {}",
                        count, limits_.max_collection_items);
    return step(count);
  }

  // A list or dict was built: checks its nesting.
  [[nodiscard]] Status nesting(const Value& v) const {
    if (v.depth() > limits_.max_nesting_depth)
      return make_error(ErrorCode::kOutOfRange, "template built values nested deeper than {}",
                        limits_.max_nesting_depth);
    return {};
  }

  [[nodiscard]] Status loop_iteration() {
    if (++loop_iterations_ > limits_.max_loop_iterations)
      return make_error(ErrorCode::kOutOfRange, "template exceeded {} loop iterations",
                        limits_.max_loop_iterations);
    return {};
  }

  // Recursion depth; pair every successful enter() with leave().
  [[nodiscard]] Status enter() {
    if (++depth_ > limits_.max_recursion_depth) {
      --depth_;
      return make_error(ErrorCode::kOutOfRange, "template recursion deeper than {}",
                        limits_.max_recursion_depth);
    }
    return {};
  }
  void leave() { --depth_; }

 private:
  const JinjaLimits& limits_;
  std::uint64_t steps_ = 0;
  std::size_t loop_iterations_ = 0;
  std::size_t depth_ = 0;
};

}  // namespace spillway::serve::jinja
