#include "sim/workload.h"

#include <charconv>
#include <cmath>
#include <limits>
#include <utility>

#include "core/request_trace.h"

#include "sim/mau_workload.h"
#include "sim/trace_workload.h"

namespace spillway::sim {
namespace {

Error spec_error(std::string_view text, std::string_view part, std::string_view problem) {
  return make_error(ErrorCode::kInvalidArgument, "workload \"{}\": {}: {}", text, part, problem);
}

std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> parts;
  std::size_t begin = 0;
  while (true) {
    const std::size_t end = text.find(sep, begin);
    parts.push_back(text.substr(begin, end == std::string_view::npos ? end : end - begin));
    if (end == std::string_view::npos) return parts;
    begin = end + 1;
  }
}

// A finite number with nothing after it.
std::optional<double> parse_number(std::string_view value) {
  double out = 0;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, out);
  if (ec != std::errc() || ptr != end || !std::isfinite(out)) return std::nullopt;
  return out;
}

// A positive integer with an optional K / M / B (10^3, 10^6, 10^9) suffix.
std::optional<std::int64_t> parse_count(std::string_view value) {
  std::int64_t multiplier = 1;
  if (!value.empty()) {
    switch (value.back()) {
      case 'k':
      case 'K':
        multiplier = 1'000;
        break;
      case 'm':
      case 'M':
        multiplier = 1'000'000;
        break;
      case 'b':
      case 'B':
        multiplier = 1'000'000'000;
        break;
      default:
        break;
    }
    if (multiplier != 1) value.remove_suffix(1);
  }
  std::int64_t n = 0;
  const char* end = value.data() + value.size();
  auto [ptr, ec] = std::from_chars(value.data(), end, n);
  if (ec != std::errc() || ptr != end || value.empty() || n < 1) return std::nullopt;
  if (n > std::numeric_limits<std::int64_t>::max() / multiplier) return std::nullopt;
  return n * multiplier;
}

}  // namespace

Result<WorkloadSpec> parse_workload_spec(std::string_view text) {
  const std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) {
    return spec_error(text, "kind", "expected trace:PATH[,...] or mau:N[,...]");
  }
  const std::string_view kind = text.substr(0, colon);
  WorkloadSpec spec;
  if (kind == "trace") {
    spec.kind = WorkloadSpec::Kind::kTrace;
  } else if (kind == "mau") {
    spec.kind = WorkloadSpec::Kind::kMau;
  } else {
    return spec_error(text, kind.empty() ? std::string_view("kind") : kind,
                      "unknown workload kind (expected trace or mau)");
  }
  const std::vector<std::string_view> parts = split(text.substr(colon + 1), ',');
  const std::string_view head = parts.front();
  if (spec.kind == WorkloadSpec::Kind::kTrace) {
    if (head.empty()) return spec_error(text, "path", "empty");
    spec.path = std::string(head);
  } else {
    const auto n = parse_count(head);
    if (!n) return spec_error(text, "N", "expected a positive integer, optionally with K, M or B");
    spec.mau = *n;
  }
  std::vector<std::string_view> seen;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    const std::string_view part = parts[i];
    const std::size_t eq = part.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return spec_error(text, part.empty() ? std::string_view("option") : part,
                        "expected KEY=VALUE");
    }
    const std::string_view key = part.substr(0, eq);
    const std::string_view value = part.substr(eq + 1);
    for (std::string_view k : seen) {
      if (k == key) return spec_error(text, key, "given twice");
    }
    seen.push_back(key);
    const bool trace = spec.kind == WorkloadSpec::Kind::kTrace;
    if (!trace && key == "lengths") {
      if (value.empty()) return spec_error(text, key, "empty path");
      spec.lengths_path = std::string(value);
      continue;
    }
    double* target = nullptr;
    if (key == "length") {
      target = &spec.length_scale;
    } else if (trace && key == "scale") {
      target = &spec.time_scale;
    } else if (trace && key == "rate") {
      target = &spec.rate;
      spec.rate_set = true;
    } else if (!trace && key == "hours") {
      target = &spec.hours;
    } else if (!trace && key == "start_hour") {
      target = &spec.start_hour;
    } else {
      return spec_error(text, key,
                        trace ? "unknown option (expected scale, rate or length)"
                              : "unknown option (expected hours, start_hour, length or lengths)");
    }
    const auto number = parse_number(value);
    if (!number) return spec_error(text, key, "expected a number");
    if (key == "start_hour") {
      if (*number < 0 || *number >= 24) return spec_error(text, key, "outside [0, 24)");
    } else if (!(*number > 0)) {
      return spec_error(text, key, "must be > 0");
    }
    *target = *number;
  }
  return spec;
}

Result<std::unique_ptr<Workload>> make_workload(const WorkloadSpec& spec,
                                                const WorkloadOptions& options) {
  if (spec.kind == WorkloadSpec::Kind::kMau) {
    SPW_ASSIGN_OR_RETURN(std::unique_ptr<MauWorkload> workload, MauWorkload::create(spec, options));
    return std::unique_ptr<Workload>(std::move(workload));
  }
  SPW_ASSIGN_OR_RETURN(RequestTrace trace, load_request_trace(spec.path));
  SPW_ASSIGN_OR_RETURN(std::unique_ptr<TraceWorkload> workload,
                       TraceWorkload::create(std::move(trace), spec, options));
  return std::unique_ptr<Workload>(std::move(workload));
}

}  // namespace spillway::sim
