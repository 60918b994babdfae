#include "sim/fleet_events.h"

#include <charconv>
#include <cmath>
#include <string>

namespace spillway::sim {

namespace {

Result<std::int64_t> parse_index(std::string_view text) {
  std::int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || v < 0) {
    return make_error(ErrorCode::kInvalidArgument, "'{}' is not a replica index (an integer >= 0)",
                      text);
  }
  return v;
}

}  // namespace

std::string_view fleet_event_kind_name(FleetEventSpec::Kind kind) {
  switch (kind) {
    case FleetEventSpec::Kind::kOutage:
      return "outage";
    case FleetEventSpec::Kind::kCrash:
      return "crash";
    case FleetEventSpec::Kind::kSpotPreempt:
      return "spot-preempt";
  }
  return "?";
}

Result<Nanos> parse_sim_time(std::string_view text) {
  double unit = 1;
  std::string_view number = text;
  if (!number.empty()) {
    const char last = number.back();
    if (last == 's' || last == 'm' || last == 'h') {
      unit = last == 's' ? 1 : last == 'm' ? 60 : 3600;
      number.remove_suffix(1);
    }
  }
  double v = 0;
  const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), v);
  // 10^7 s (~116 days) keeps the nanosecond count far from overflow.
  if (number.empty() || ec != std::errc() || ptr != number.data() + number.size() ||
      !std::isfinite(v) || v < 0 || v * unit > 1e7) {
    return make_error(ErrorCode::kInvalidArgument,
                      "'{}' is not a time (seconds >= 0 up to 1e7, optional unit s, m or h)", text);
  }
  return Nanos{static_cast<std::int64_t>(std::llround(v * unit * 1e9))};
}

Result<FleetEventSpec> parse_fleet_event(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return make_error(ErrorCode::kInvalidArgument,
                      "--event '{}': {} (expected outage:POOL@START[-END], crash:INDEX@T or "
                      "spot-preempt:POOL@T[-END])",
                      text, why);
  };
  const std::size_t colon = text.find(':');
  const std::size_t at = text.rfind('@');
  if (colon == std::string_view::npos || at == std::string_view::npos || at < colon) {
    return bad("missing ':' or '@'");
  }
  const std::string_view kind = text.substr(0, colon);
  const std::string_view target = text.substr(colon + 1, at - colon - 1);
  std::string_view when = text.substr(at + 1);
  if (target.empty()) return bad("empty target");
  FleetEventSpec spec;
  if (kind == "outage") {
    spec.kind = FleetEventSpec::Kind::kOutage;
  } else if (kind == "crash") {
    spec.kind = FleetEventSpec::Kind::kCrash;
  } else if (kind == "spot-preempt") {
    spec.kind = FleetEventSpec::Kind::kSpotPreempt;
  } else {
    return bad(fmt::format("unknown kind '{}'", kind));
  }
  if (spec.kind == FleetEventSpec::Kind::kCrash) {
    auto index = parse_index(target);
    if (!index.ok()) return bad(index.error().message());
    spec.replica_index = *index;
  } else {
    spec.pool = std::string(target);
  }
  const std::size_t dash = when.find('-');
  if (dash != std::string_view::npos) {
    if (spec.kind == FleetEventSpec::Kind::kCrash) return bad("a crash has no end time");
    auto end = parse_sim_time(when.substr(dash + 1));
    if (!end.ok()) return bad(end.error().message());
    spec.end = *end;
    when = when.substr(0, dash);
  }
  auto start = parse_sim_time(when);
  if (!start.ok()) return bad(start.error().message());
  spec.start = *start;
  if (spec.end && *spec.end <= spec.start) return bad("END is not after START");
  return spec;
}

}  // namespace spillway::sim
