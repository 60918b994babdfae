#include "gateway/sse_splitter.h"

namespace spillway::gateway {

Status SseSplitter::feed(std::string_view bytes, const EventCallback& on_event) {
  while (!bytes.empty()) {
    const std::size_t nl = bytes.find('\n');
    const std::string_view part = bytes.substr(0, nl);
    if (line_.size() + part.size() + data_.size() > max_event_bytes_) {
      return make_error(ErrorCode::kPayloadTooLarge, "an upstream stream event exceeds {} bytes",
                        max_event_bytes_);
    }
    if (nl == std::string_view::npos) {
      line_.append(part);
      return Status();
    }
    bytes.remove_prefix(nl + 1);
    bool keep_going;
    if (line_.empty()) {
      keep_going = line(part, on_event);
    } else {
      line_.append(part);
      const std::string whole = std::move(line_);
      line_.clear();
      keep_going = line(whole, on_event);
    }
    if (!keep_going) return make_error(ErrorCode::kCancelled, "stream relay stopped");
  }
  return Status();
}

bool SseSplitter::line(std::string_view text, const EventCallback& on_event) {
  if (text.ends_with('\r')) text.remove_suffix(1);
  if (text.empty()) {
    if (!has_data_) return true;
    const std::string data = std::move(data_);
    data_.clear();
    has_data_ = false;
    return on_event(data);
  }
  if (text.starts_with(':')) return true;  // A comment.
  const std::size_t colon = text.find(':');
  const std::string_view field = text.substr(0, colon);
  if (field != "data") return true;
  std::string_view value = colon == std::string_view::npos ? "" : text.substr(colon + 1);
  if (value.starts_with(' ')) value.remove_prefix(1);
  if (has_data_) data_.push_back('\n');
  data_.append(value);
  has_data_ = true;
  return true;
}

}  // namespace spillway::gateway
