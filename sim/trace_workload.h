// `--workload trace:…`: replays a request trace (see sim/workload.h for the spec). The trace is
// held once; R copies (rate=R) are merged lazily through a heap of one entry per copy, so
// memory is O(trace rows + R) whatever the replay's length.
//
// Thread-safety: one thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "core/random.h"
#include "core/request_trace.h"
#include "core/status.h"

#include "sim/request_builder.h"
#include "sim/workload.h"

namespace spillway::sim {

class TraceWorkload final : public Workload {
 public:
  // kInvalidArgument for an empty or unsorted trace, a bad option or a limit exceeded.
  [[nodiscard]] static Result<std::unique_ptr<TraceWorkload>> create(
      RequestTrace trace, const WorkloadSpec& spec, const WorkloadOptions& options);

  [[nodiscard]] std::optional<SimRequest> next() override;
  [[nodiscard]] double peak_rate() const override { return peak_rate_; }

 private:
  struct Copy {
    SeededRandom rng;
    std::size_t next_row = 0;
    bool jitter = false;
    double keep = 1;  // Probability of keeping each row.
  };
  struct Pending {
    Nanos arrival;
    std::uint32_t copy;
    std::uint32_t row;
  };

  TraceWorkload(RequestTrace trace, const WorkloadSpec& spec, const WorkloadOptions& options,
                RequestBuilder builder);
  // Pushes copy `c`'s next kept row onto the heap, if any.
  void advance(std::uint32_t c);
  [[nodiscard]] Nanos to_nanos(double trace_seconds) const;

  RequestTrace trace_;
  double time_scale_;
  double rate_;
  Nanos duration_;
  RequestBuilder builder_;
  double peak_rate_ = 0;
  // Timed traces.
  std::vector<Copy> copies_;
  std::vector<Pending> heap_;  // Min-heap by (arrival, copy, row).
  // Timeless traces: Poisson arrivals, rows in order.
  SeededRandom arrivals_;
  double poisson_s_ = 0;
  std::size_t poisson_row_ = 0;
};

}  // namespace spillway::sim
