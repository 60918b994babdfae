// The "fast" replica model: the serving core's scheduling rules (sim/replica_model.h,
// engine/scheduler.h) re-implemented on counts — no token ids, hashes or per-block records —
// with aggregated steps: while the batch does not change, k identical decode steps are one
// event whose duration is PerfModel::decode_steps_time (closed form), so a fleet of thousands
// of replicas simulates an hour in minutes. tests/sim/fast_replica_test.cc holds it to the
// "exact" model (engine::Scheduler) on random workloads.
//
// Same rules as engine::Scheduler: budget order (running sequences by priority, then
// submission order, then id; then admission in that order), chunked prefill, admission up to
// max_running, preemption of the last running sequence when a block is missing and of strictly
// lower priorities for a waiting one when that suffices, first come first served within a
// class; the block pool's free-then-LRU allocation; prefix caching per namespace, including
// the engine's corner cases: a block computed while another copy is already cached stays an
// unpublished duplicate, and one published under a duplicate parent is never matched but keeps
// the canonical copy from being published until it is evicted. The prefix cache is modelled as
// chains of full blocks — one per (namespace, prefix_id), one per request for its own tokens —
// with cached-block counts and an LRU list of chain segments.
//
// Cost: a step that changes the batch costs O(running + admissions); a run of decode steps
// costs O(running) once, whatever its length; a submit or cancel during a run costs
// O(log run length) to cut the run at the next step boundary.
//
// Differences from "exact":
//   - A run of k decode steps rounds its summed duration once, where the exact model rounds
//     each step to a nanosecond: times differ by at most (steps so far) / 2 ns.
//   - kv_usage in load() during a run counts the blocks of its first step only (the rest are
//     allocated when the run completes).
//   - Dropped blocks of a cancelled request return to the pool at once, and a cut run's later
//     blocks are allocated at its end: under cache pressure with cancellations the LRU order
//     can differ from the exact model's.

// The conformance tests find identical scheduling (steps, preemptions, prefix hits, tokens)
// with and without cache pressure; only the rounding above remains.
//
// Thread-safety: none (see ReplicaModel).
#pragma once

#include <memory>

#include "core/status.h"

#include "sim/perf_model.h"
#include "sim/replica_model.h"

namespace spillway::sim {

// kInvalidArgument for an invalid config (the exact model's checks). `perf` must outlive the
// replica.
[[nodiscard]] Result<std::unique_ptr<ReplicaModel>> make_fast_replica(const PerfModel& perf,
                                                                      const ReplicaConfig& config);

}  // namespace spillway::sim
