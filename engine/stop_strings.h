// Finds stop strings in streamed text without ever emitting part of one: text that could be
// the start of a stop string is held back until it either completes one (generation stops and
// the stop string is not emitted, as OpenAI does) or can no longer match (it is released).
//
// Thread-safety: one per sequence.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace spillway::engine {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  // Feeds newly decoded text; returns the text that is now safe to emit. After a stop string
  // is found, stopped() is true and later calls return "".
  std::string push(std::string_view text);
  // End of generation: releases whatever was held back (no stop string completed).
  std::string flush();
  [[nodiscard]] bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace spillway::engine
