#include "core/metrics.h"

#include <fmt/format.h>

#include <cassert>
#include <cmath>
#include <stdexcept>

namespace spillway {
namespace {

enum FamilyType { kCounter = 0, kGauge = 1, kHistogram = 2 };

std::string_view type_word(int type) {
  switch (type) {
    case kCounter:
      return "counter";
    case kGauge:
      return "gauge";
    default:
      return "histogram";
  }
}

void atomic_add(std::atomic<double>& a, double delta) {
  double old = a.load(std::memory_order_relaxed);
  while (!a.compare_exchange_weak(old, old + delta, std::memory_order_relaxed)) {
  }
}

bool name_char(char c, bool first, bool allow_colon) {
  const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  if (alpha || (allow_colon && c == ':')) return true;
  return !first && c >= '0' && c <= '9';
}

// HELP text escapes only backslash and newline.
std::string escape_help(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Renders {a="x",b="y"} plus an optional extra label (le for histogram buckets).
std::string render_labels(const MetricLabels& labels, std::string_view extra_name = {},
                          std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [k, v] : labels) {
    if (!first) out += ',';
    first = false;
    out += fmt::format("{}=\"{}\"", k, escape_label_value(v));
  }
  if (!extra_name.empty()) {
    if (!first) out += ',';
    out += fmt::format("{}=\"{}\"", extra_name, extra_value);
  }
  out += '}';
  return out;
}

}  // namespace

bool is_valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!name_char(name[i], i == 0, true)) return false;
  }
  return true;
}

bool is_valid_label_name(std::string_view name) {
  if (name.empty() || name.starts_with("__")) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!name_char(name[i], i == 0, false)) return false;
  }
  return true;
}

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    switch (c) {
      case '\\':
        out += "\\\\";
        break;
      case '"':
        out += "\\\"";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string format_metric_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::trunc(v) && std::fabs(v) < 1e15)
    return fmt::format("{}", static_cast<long long>(v));
  return fmt::format("{}", v);
}

void Counter::inc(double delta) {
  assert(delta >= 0);
  atomic_add(value_, delta);
}

void Gauge::add(double delta) {
  atomic_add(value_, delta);
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)),
      buckets_(std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)) {
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1])) {
      throw std::logic_error("histogram bounds must be finite and strictly increasing");
    }
  }
}

void Histogram::observe(double v) {
  std::size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i])
    ++i;  // Buckets are "le": v <= bound.
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  atomic_add(sum_, v);
}

std::uint64_t Histogram::bucket_count(std::size_t i) const {
  return buckets_[i].load(std::memory_order_relaxed);
}

std::vector<double> latency_buckets_seconds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1,  0.25, 0.5,
          0.75,  1.0,    2.5,   5.0,  7.5,   10.0, 20.0,  30.0, 60.0};
}

struct MetricsRegistry::Family {
  std::string name;
  std::string help;
  int type;
  struct Series {
    MetricLabels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::function<double()> gauge_fn;
    std::unique_ptr<Histogram> histogram;
  };
  std::vector<Series> series;

  Series* find(const MetricLabels& labels) {
    for (Series& s : series) {
      if (s.labels == labels) return &s;
    }
    return nullptr;
  }
  Series& add(MetricLabels labels) {
    for (const auto& [k, v] : labels) {
      if (!is_valid_label_name(k) || k == "le") {
        throw std::logic_error(fmt::format("metric {}: invalid label name '{}'", name, k));
      }
    }
    series.push_back(Series{std::move(labels), nullptr, nullptr, nullptr, nullptr});
    return series.back();
  }
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Family& MetricsRegistry::family(std::string_view name, std::string_view help,
                                                 int type) {
  if (!is_valid_metric_name(name)) {
    throw std::logic_error(fmt::format("invalid metric name '{}'", name));
  }
  for (auto& f : families_) {
    if (f->name == name) {
      if (f->type != type) {
        throw std::logic_error(fmt::format("metric {} registered as {} and {}", name,
                                           type_word(f->type), type_word(type)));
      }
      return *f;
    }
  }
  families_.push_back(
      std::make_unique<Family>(Family{std::string(name), std::string(help), type, {}}));
  return *families_.back();
}

Counter& MetricsRegistry::counter(std::string_view name, std::string_view help,
                                  MetricLabels labels) {
  std::lock_guard lock(mu_);
  Family& f = family(name, help, kCounter);
  if (Family::Series* s = f.find(labels)) return *s->counter;
  Family::Series& s = f.add(std::move(labels));
  s.counter = std::make_unique<Counter>();
  return *s.counter;
}

Gauge& MetricsRegistry::gauge(std::string_view name, std::string_view help, MetricLabels labels) {
  std::lock_guard lock(mu_);
  Family& f = family(name, help, kGauge);
  if (Family::Series* s = f.find(labels)) {
    if (!s->gauge) throw std::logic_error(fmt::format("metric {} is a computed gauge", name));
    return *s->gauge;
  }
  Family::Series& s = f.add(std::move(labels));
  s.gauge = std::make_unique<Gauge>();
  return *s.gauge;
}

void MetricsRegistry::gauge_fn(std::string_view name, std::string_view help,
                               std::function<double()> fn, MetricLabels labels) {
  std::lock_guard lock(mu_);
  Family& f = family(name, help, kGauge);
  if (Family::Series* s = f.find(labels)) {
    if (!s->gauge_fn) throw std::logic_error(fmt::format("metric {} is a plain gauge", name));
    s->gauge_fn = std::move(fn);
    return;
  }
  f.add(std::move(labels)).gauge_fn = std::move(fn);
}

Histogram& MetricsRegistry::histogram(std::string_view name, std::string_view help,
                                      std::vector<double> upper_bounds, MetricLabels labels) {
  std::lock_guard lock(mu_);
  Family& f = family(name, help, kHistogram);
  if (Family::Series* s = f.find(labels)) return *s->histogram;
  auto h = std::make_unique<Histogram>(std::move(upper_bounds));
  Family::Series& s = f.add(std::move(labels));
  s.histogram = std::move(h);
  return *s.histogram;
}

std::string MetricsRegistry::render_prometheus() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& f : families_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", f->name, escape_help(f->help), f->name,
                       type_word(f->type));
    for (const Family::Series& s : f->series) {
      if (f->type == kHistogram) {
        const Histogram& h = *s.histogram;
        std::uint64_t cumulative = 0;
        for (std::size_t i = 0; i < h.upper_bounds().size(); ++i) {
          cumulative += h.bucket_count(i);
          out += fmt::format(
              "{}_bucket{} {}\n", f->name,
              render_labels(s.labels, "le", format_metric_value(h.upper_bounds()[i])), cumulative);
        }
        cumulative += h.bucket_count(h.upper_bounds().size());
        out += fmt::format("{}_bucket{} {}\n", f->name, render_labels(s.labels, "le", "+Inf"),
                           cumulative);
        out += fmt::format("{}_sum{} {}\n", f->name, render_labels(s.labels),
                           format_metric_value(h.sum()));
        out += fmt::format("{}_count{} {}\n", f->name, render_labels(s.labels), cumulative);
        continue;
      }
      double v = 0;
      if (s.counter) {
        v = s.counter->value();
      } else if (s.gauge) {
        v = s.gauge->value();
      } else {
        v = s.gauge_fn();
      }
      out += fmt::format("{}{} {}\n", f->name, render_labels(s.labels), format_metric_value(v));
    }
  }
  return out;
}

}  // namespace spillway
