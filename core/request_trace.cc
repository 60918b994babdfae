#include "core/request_trace.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iterator>
#include <tuple>

namespace spillway {
namespace {

std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t comma = line.find(',', start);
    out.push_back(line.substr(start, comma == std::string_view::npos ? comma : comma - start));
    if (comma == std::string_view::npos) return out;
    start = comma + 1;
  }
}

bool parse_int(std::string_view s, std::int64_t& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && end == s.data() + s.size();
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
std::int64_t days_from_civil(std::int64_t y, std::int64_t m, std::int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const std::int64_t yoe = y - era * 400;
  const std::int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const std::int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// "YYYY-MM-DD HH:MM:SS[.fraction]" → seconds since the epoch (no time zone).
bool parse_timestamp(std::string_view s, double& out) {
  if (s.size() < 19 || s[4] != '-' || s[7] != '-' || s[10] != ' ' || s[13] != ':' || s[16] != ':') {
    return false;
  }
  std::int64_t y, mo, d, h, mi, sec;
  if (!parse_int(s.substr(0, 4), y) || !parse_int(s.substr(5, 2), mo) ||
      !parse_int(s.substr(8, 2), d) || !parse_int(s.substr(11, 2), h) ||
      !parse_int(s.substr(14, 2), mi) || !parse_int(s.substr(17, 2), sec)) {
    return false;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return false;
  double frac = 0;
  if (s.size() > 19) {
    if (s[19] != '.' || s.size() == 20 || s.size() > 30) return false;
    double scale = 0.1;
    for (const char c : s.substr(20)) {
      if (c < '0' || c > '9') return false;
      frac += (c - '0') * scale;
      scale /= 10;
    }
  }
  out = static_cast<double>(days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) + frac;
  return true;
}

}  // namespace

Result<RequestTrace> parse_request_trace(std::string_view text, std::string_view name,
                                         const TraceLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return make_error(ErrorCode::kPayloadTooLarge, "{}: {} bytes is over the limit of {}", name,
                      text.size(), limits.max_bytes);
  }
  RequestTrace trace;
  std::size_t line_no = 0;
  std::size_t pos = 0;
  int ctx_col = -1, gen_col = -1, time_col = -1;
  double first_time = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const auto cells = split(line);
    if (line_no == 1) {
      for (std::size_t i = 0; i < cells.size(); ++i) {
        const std::string_view c = cells[i];
        if (c == "TIMESTAMP") time_col = static_cast<int>(i);
        if (c == "ContextTokens" || c == "num_prefill_tokens") ctx_col = static_cast<int>(i);
        if (c == "GeneratedTokens" || c == "num_decode_tokens") gen_col = static_cast<int>(i);
      }
      if (ctx_col < 0 || gen_col < 0) {
        return make_error(ErrorCode::kInvalidArgument,
                          "{}:1: unknown trace header '{}' (expected "
                          "TIMESTAMP,ContextTokens,GeneratedTokens or "
                          "num_prefill_tokens,num_decode_tokens,...)",
                          name, line.substr(0, 120));
      }
      trace.has_times = time_col >= 0;
      continue;
    }
    if (trace.requests.size() >= limits.max_rows) {
      return make_error(ErrorCode::kOutOfRange, "{}: more than {} rows", name, limits.max_rows);
    }
    const auto need = static_cast<std::size_t>(std::max({ctx_col, gen_col, time_col}) + 1);
    if (cells.size() < need) {
      return make_error(ErrorCode::kInvalidArgument, "{}:{}: expected {} columns, got {}", name,
                        line_no, need, cells.size());
    }
    TraceRequest r;
    std::int64_t v = 0;
    for (const auto& [col, field, label] :
         {std::tuple{ctx_col, &r.context_tokens, "context tokens"},
          std::tuple{gen_col, &r.generated_tokens, "generated tokens"}}) {
      if (!parse_int(cells[static_cast<std::size_t>(col)], v) || v < 0 || v > (1 << 24)) {
        return make_error(ErrorCode::kInvalidArgument,
                          "{}:{}: {}: expected an integer in [0, 2^24], got '{}'", name, line_no,
                          label, cells[static_cast<std::size_t>(col)]);
      }
      *field = static_cast<std::int32_t>(v);
    }
    if (trace.has_times) {
      double t = 0;
      if (!parse_timestamp(cells[static_cast<std::size_t>(time_col)], t)) {
        return make_error(ErrorCode::kInvalidArgument,
                          "{}:{}: TIMESTAMP: expected 'YYYY-MM-DD HH:MM:SS.fraction', got '{}'",
                          name, line_no, cells[static_cast<std::size_t>(time_col)]);
      }
      if (trace.requests.empty()) first_time = t;
      r.arrival_s = t - first_time;
      if (!trace.requests.empty() && r.arrival_s < trace.requests.back().arrival_s) {
        return make_error(ErrorCode::kInvalidArgument, "{}:{}: rows are not in time order", name,
                          line_no);
      }
    }
    trace.requests.push_back(r);
  }
  if (line_no == 0) return make_error(ErrorCode::kInvalidArgument, "{}: empty trace", name);
  return trace;
}

Result<RequestTrace> load_request_trace(const std::string& path, const TraceLimits& limits) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::kNotFound, "{}: cannot open the trace file", path);
  in.seekg(0, std::ios::end);
  const auto size = static_cast<std::size_t>(in.tellg());
  if (size > limits.max_bytes) {
    return make_error(ErrorCode::kPayloadTooLarge, "{}: {} bytes is over the limit of {}", path,
                      size, limits.max_bytes);
  }
  in.seekg(0);
  std::string text(size, '\0');
  in.read(text.data(), static_cast<std::streamsize>(size));
  return parse_request_trace(text, path, limits);
}

}  // namespace spillway
