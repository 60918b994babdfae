#include "control/prometheus_text.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>

namespace spillway::control {
namespace {

bool is_name_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
bool is_name_char(char c) {
  return is_name_start(c) || (c >= '0' && c <= '9');
}
bool is_label_start(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_label_char(char c) {
  return is_label_start(c) || (c >= '0' && c <= '9');
}

void skip_blanks(std::string_view s, std::size_t& i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t'))
    ++i;
}

// Prometheus spells infinities and NaN as +Inf, -Inf, Inf and NaN.
std::optional<double> parse_number(std::string_view s) {
  if (s == "+Inf" || s == "Inf") return std::numeric_limits<double>::infinity();
  if (s == "-Inf") return -std::numeric_limits<double>::infinity();
  if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (s.empty()) return std::nullopt;
  std::string_view digits = s;
  if (digits.front() == '+') digits.remove_prefix(1);
  double v = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
  if (ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return v;
}

Error line_error(std::size_t line_no, std::string_view what) {
  return make_error(ErrorCode::kDataLoss, "line {}: {}", line_no, what);
}

// Parses `{a="x",b="y"}` starting at s[i] == '{'; leaves i after the '}'.
Status parse_labels(std::string_view s, std::size_t& i, std::size_t line_no,
                    const PrometheusLimits& limits, PrometheusSample& sample) {
  ++i;  // '{'
  while (true) {
    skip_blanks(s, i);
    if (i < s.size() && s[i] == '}') {
      ++i;
      return Status();
    }
    if (i >= s.size() || !is_label_start(s[i])) return line_error(line_no, "bad label name");
    const std::size_t name_start = i;
    while (i < s.size() && is_label_char(s[i]))
      ++i;
    std::string name(s.substr(name_start, i - name_start));
    skip_blanks(s, i);
    if (i >= s.size() || s[i] != '=') return line_error(line_no, "expected '=' after label name");
    ++i;
    skip_blanks(s, i);
    if (i >= s.size() || s[i] != '"') return line_error(line_no, "expected '\"' to open a label");
    ++i;
    std::string value;
    bool closed = false;
    while (i < s.size()) {
      const char c = s[i++];
      if (c == '"') {
        closed = true;
        break;
      }
      if (c != '\\') {
        value += c;
        continue;
      }
      if (i >= s.size()) break;
      const char e = s[i++];
      if (e == 'n') {
        value += '\n';
      } else if (e == '\\' || e == '"') {
        value += e;
      } else {
        return line_error(line_no, "bad escape in label value");
      }
    }
    if (!closed) return line_error(line_no, "unterminated label value");
    if (sample.labels.size() >= limits.max_labels_per_sample) {
      return line_error(line_no, "too many labels");
    }
    sample.labels.emplace_back(std::move(name), std::move(value));
    skip_blanks(s, i);
    if (i < s.size() && s[i] == ',') {
      ++i;
      continue;
    }
    if (i < s.size() && s[i] == '}') {
      ++i;
      return Status();
    }
    return line_error(line_no, "expected ',' or '}' after a label");
  }
}

Result<PrometheusSample> parse_sample_line(std::string_view s, std::size_t line_no,
                                           const PrometheusLimits& limits) {
  PrometheusSample sample;
  std::size_t i = 0;
  skip_blanks(s, i);
  if (i >= s.size() || !is_name_start(s[i])) return line_error(line_no, "bad metric name");
  const std::size_t name_start = i;
  while (i < s.size() && is_name_char(s[i]))
    ++i;
  sample.name = std::string(s.substr(name_start, i - name_start));
  if (i < s.size() && s[i] == '{') SPW_TRY(parse_labels(s, i, line_no, limits, sample));
  const std::size_t before_value = i;
  skip_blanks(s, i);
  if (i == before_value) return line_error(line_no, "expected a space before the value");
  const std::size_t value_start = i;
  while (i < s.size() && s[i] != ' ' && s[i] != '\t')
    ++i;
  const auto value = parse_number(s.substr(value_start, i - value_start));
  if (!value) return line_error(line_no, "value is not a number");
  sample.value = *value;
  skip_blanks(s, i);
  if (i < s.size()) {  // Optional timestamp: an integer in milliseconds.
    const std::size_t ts_start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t')
      ++i;
    std::string_view ts = s.substr(ts_start, i - ts_start);
    if (!ts.empty() && ts.front() == '-') ts.remove_prefix(1);
    std::int64_t t = 0;
    const auto [end, ec] = std::from_chars(ts.data(), ts.data() + ts.size(), t);
    if (ts.empty() || ec != std::errc() || end != ts.data() + ts.size()) {
      return line_error(line_no, "bad timestamp");
    }
    skip_blanks(s, i);
    if (i < s.size()) return line_error(line_no, "unexpected text after the timestamp");
  }
  return sample;
}

bool labels_include(const PrometheusSample& sample,
                    const std::vector<std::pair<std::string, std::string>>& wanted) {
  return std::all_of(wanted.begin(), wanted.end(), [&](const auto& kv) {
    const auto v = sample.label(kv.first);
    return v && *v == kv.second;
  });
}

}  // namespace

std::optional<std::string_view> PrometheusSample::label(std::string_view label_name) const {
  for (const auto& [k, v] : labels) {
    if (k == label_name) return std::string_view(v);
  }
  return std::nullopt;
}

Result<std::vector<PrometheusSample>> parse_prometheus_text(std::string_view text,
                                                            const PrometheusLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return make_error(ErrorCode::kPayloadTooLarge, "metrics text of {} bytes exceeds {} bytes",
                      text.size(), limits.max_bytes);
  }
  std::vector<PrometheusSample> samples;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::size_t i = 0;
    skip_blanks(line, i);
    if (i == line.size() || line[i] == '#') continue;
    if (samples.size() >= limits.max_samples) {
      return make_error(ErrorCode::kPayloadTooLarge, "metrics text has more than {} samples",
                        limits.max_samples);
    }
    SPW_ASSIGN_OR_RETURN(PrometheusSample sample, parse_sample_line(line, line_no, limits));
    samples.push_back(std::move(sample));
  }
  return samples;
}

std::optional<double> find_sample(const std::vector<PrometheusSample>& samples,
                                  std::string_view name,
                                  const std::vector<std::pair<std::string, std::string>>& labels) {
  for (const PrometheusSample& s : samples) {
    if (s.name == name && labels_include(s, labels)) return s.value;
  }
  return std::nullopt;
}

Result<std::vector<HistogramBucket>> extract_histogram(const std::vector<PrometheusSample>& samples,
                                                       std::string_view name) {
  const std::string bucket_name = std::string(name) + "_bucket";
  std::map<double, double> by_bound;
  for (const PrometheusSample& s : samples) {
    if (s.name != bucket_name) continue;
    const auto le = s.label("le");
    const auto bound = le ? parse_number(*le) : std::nullopt;
    if (!bound || std::isnan(*bound)) {
      return make_error(ErrorCode::kDataLoss, "{} has a bucket without a numeric 'le' label", name);
    }
    by_bound[*bound] += s.value;
  }
  std::vector<HistogramBucket> out;
  out.reserve(by_bound.size());
  for (const auto& [bound, count] : by_bound)
    out.push_back({bound, count});
  return out;
}

std::vector<HistogramBucket> histogram_delta(const std::vector<HistogramBucket>& current,
                                             const std::vector<HistogramBucket>& previous) {
  if (current.size() != previous.size()) return current;
  std::vector<HistogramBucket> out = current;
  for (std::size_t i = 0; i < current.size(); ++i) {
    if (current[i].upper_bound != previous[i].upper_bound ||
        current[i].cumulative_count < previous[i].cumulative_count) {
      return current;
    }
    out[i].cumulative_count -= previous[i].cumulative_count;
  }
  return out;
}

std::optional<double> histogram_quantile(double q, const std::vector<HistogramBucket>& buckets) {
  if (buckets.empty() || std::isnan(q)) return std::nullopt;
  q = std::clamp(q, 0.0, 1.0);
  const double total = buckets.back().cumulative_count;
  if (!(total > 0)) return std::nullopt;
  const double rank = q * total;
  double prev_bound = 0;
  double prev_count = 0;
  for (const HistogramBucket& b : buckets) {
    if (b.cumulative_count >= rank && b.cumulative_count > prev_count) {
      if (std::isinf(b.upper_bound)) return prev_bound;
      const double fraction = (rank - prev_count) / (b.cumulative_count - prev_count);
      return prev_bound + (b.upper_bound - prev_bound) * fraction;
    }
    if (!std::isinf(b.upper_bound)) prev_bound = b.upper_bound;
    prev_count = b.cumulative_count;
  }
  return prev_bound;
}

}  // namespace spillway::control
