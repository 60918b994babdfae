// Splits an upstream's server-sent-event byte stream, arriving in arbitrary pieces, into
// events, so the gateway can relay a stream event by event (and drop or edit single events).
//
// Lines end with LF or CRLF; a blank line ends an event. Of each event only the data is kept:
// its "data:" lines (one optional space after the colon removed) joined with "\n". Comments
// (":...") and other fields are dropped; events without data are not reported.
//
// Thread-safety: one splitter per stream; not for concurrent use.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace spillway::gateway {

class SseSplitter {
 public:
  // REQUIRES: max_event_bytes > 0.
  explicit SseSplitter(std::size_t max_event_bytes) : max_event_bytes_(max_event_bytes) {}

  // Return false to stop: feed() then returns kCancelled at once.
  using EventCallback = std::function<bool(std::string_view data)>;

  // Consumes `bytes`, calling on_event for each event completed by them. kPayloadTooLarge when
  // one event (or one unfinished line) exceeds max_event_bytes; the splitter is then unusable.
  [[nodiscard]] Status feed(std::string_view bytes, const EventCallback& on_event);

  // True when bytes of an unfinished event are buffered (a stream that ends now is truncated).
  [[nodiscard]] bool partial() const { return !line_.empty() || has_data_; }

 private:
  [[nodiscard]] bool line(std::string_view text, const EventCallback& on_event);

  const std::size_t max_event_bytes_;
  std::string line_;  // The unfinished line.
  std::string data_;  // Data of the event being read.
  bool has_data_ = false;
};

}  // namespace spillway::gateway
