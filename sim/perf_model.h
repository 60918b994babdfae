// How long one serving step takes on a given accelerator for a given model: a roofline of the
// step's arithmetic (FLOPs) and memory traffic (weights + KV cache read), each divided by the
// device's peak rate times an efficiency factor, plus tensor-parallel communication and a fixed
// per-step overhead. Every hardware figure names its source (docs/SIMULATOR.md).
//
//   step_time = overhead + max(matmul_flops / (tp * peak_flops * flops_eff)
//                                + attention_flops / (tp * peak_flops * attention_eff),
//                              weight_bytes / (tp * bandwidth * bandwidth_eff)
//                                + kv_bytes / (tp * bandwidth * kv_bandwidth_eff))
//               + (tp > 1 ? 2 * n_layer all-reduces of the step's activations : 0)
//   matmul_flops = 2 * params * tokens
//   attention_flops = 4 * n_layer * n_embd * attended positions
//   weight_bytes = the model's weights (read once per step)
//   kv_bytes = KV bytes of the positions read (StepShape::kv_positions: each sequence's
//              context once, as paged-attention kernels read it; the attended positions when
//              kv_positions is 0)
//   With attention_eff == flops_eff and kv_bandwidth_eff == bandwidth_eff (the datacenter
//   profiles) this is the plain roofline max(flops / rate, bytes / bandwidth); cpu-local fits
//   its own attention and KV-read rates (calibrate.h).
//   one all-reduce = link_latency + 2 (tp - 1) / tp * tokens * n_embd * 2 bytes / link_bandwidth
//                    (a ring all-reduce of BF16 activations)
//   + idle_wake when the step is the first after the replica had no request in flight
//     (StepShape::after_idle): its serving thread wakes, and caches are refilled.
// An empty shape (no tokens) takes no time. docs/sim/perf-model.md derives each term.
//
// `cpu-local` stands for this machine: its figures are fitted by `spillway sim calibrate`
// from steps of the real engine (see calibrate.h) and can be loaded from the TOML file that
// writes; the built-in `cpu-local` is one such fit, made on the development machine.
//
// Thread-safety: plain values; PerfModel is immutable after construction.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace spillway::engine {
struct ModelConfig;
}  // namespace spillway::engine

namespace spillway::sim {

struct GpuProfile {
  std::string name;               // "H100", "H200", "B200", "GB200", "cpu-local"
  double peak_flops = 0;          // Dense FP16/BF16 FLOP/s of one device.
  double memory_bandwidth = 0;    // Bytes/s of one device's memory.
  double memory_bytes = 0;        // One device's memory.
  double link_bandwidth = 0;      // Bytes/s per device for tensor-parallel all-reduce.
  Nanos link_latency{0};          // Per all-reduce.
  double flops_efficiency = 0.5;  // Achieved / peak, (0, 1].
  // Achieved / peak for attention's FLOPs, (0, 1]; 0 = flops_efficiency. CPU attention kernels
  // reach a far lower share of peak than matrix products do (see calibrate.h).
  double attention_efficiency = 0;
  double bandwidth_efficiency = 0.8;
  // Achieved / peak bandwidth for reading the KV cache, (0, 1]; 0 = bandwidth_efficiency.
  double kv_bandwidth_efficiency = 0;
  Nanos step_overhead{0};  // Fixed per step (scheduling, launches, sampling).
  // Added to a step that starts while the replica had no request in flight (its serving
  // thread sleeps then, and other work evicts its data from the caches); measured by
  // `spillway sim calibrate` for cpu-local, 0 for the datacenter profiles.
  Nanos idle_wake{0};
  std::string source;  // Where the figures come from.

  // kInvalidArgument naming the field for a non-positive rate or size, an efficiency outside
  // (0, 1], or a negative time.
  [[nodiscard]] Status validate() const;
  // attention_efficiency, or flops_efficiency when that is 0.
  [[nodiscard]] double effective_attention_efficiency() const {
    return attention_efficiency > 0 ? attention_efficiency : flops_efficiency;
  }
  // kv_bandwidth_efficiency, or bandwidth_efficiency when that is 0.
  [[nodiscard]] double effective_kv_bandwidth_efficiency() const {
    return kv_bandwidth_efficiency > 0 ? kv_bandwidth_efficiency : bandwidth_efficiency;
  }
};

// Built-in profiles by name (case-insensitive): H100, H200, B200, GB200, cpu-local.
[[nodiscard]] Result<GpuProfile> builtin_gpu_profile(std::string_view name);
[[nodiscard]] std::vector<std::string> builtin_gpu_profile_names();
// A profile from TOML: a [profile] table with the fields above, times in microseconds
// (link_latency_us, step_overhead_us, idle_wake_us); `source`, `attention_efficiency`,
// `kv_bandwidth_efficiency` and `idle_wake_us` optional (0 when absent). Errors name
// file:line:column and key.
[[nodiscard]] Result<GpuProfile> load_gpu_profile(const std::string& path);
[[nodiscard]] Result<GpuProfile> parse_gpu_profile(std::string_view toml_text,
                                                   const std::string& source_name);
// The TOML that load_gpu_profile reads back to the same profile (times to the nanosecond).
[[nodiscard]] std::string gpu_profile_to_toml(const GpuProfile& profile);
// Writes gpu_profile_to_toml(profile) to `path`; kInternal naming the path on an I/O failure.
[[nodiscard]] Status write_gpu_profile(const GpuProfile& profile, const std::string& path);

struct ModelProfile {
  std::string name;
  std::int32_t n_layer = 0;
  std::int32_t n_embd = 0;
  std::int32_t n_ff = 0;
  std::int32_t n_head = 0;
  std::int32_t n_head_kv = 0;
  std::int32_t n_vocab = 0;
  std::int32_t n_ctx = 0;
  double weight_bytes_per_param = 2;  // 2 for FP16/BF16; ~1.06 for Q8_0; ~0.56 for Q4_0.
  double kv_bytes_per_element = 2;    // F16 KV cache.

  [[nodiscard]] double params() const;              // Weights of all matrices + embeddings.
  [[nodiscard]] double weight_bytes() const;        // params() * weight_bytes_per_param.
  [[nodiscard]] double kv_bytes_per_token() const;  // 2 * n_layer * n_head_kv * head_dim * bytes.
  [[nodiscard]] Status validate() const;
};

// Built-in shapes (case-insensitive): llama-3-8b, llama-3-70b, llama-2-7b, tinyllama-1.1b,
// stories260k.
[[nodiscard]] Result<ModelProfile> builtin_model_profile(std::string_view name);
[[nodiscard]] std::vector<std::string> builtin_model_profile_names();
// From a GGUF file's metadata (llama.* keys and tensor types); reads no weights.
// weight_bytes_per_param is the bytes of the file's 2-D tensors (the matrices) over their
// elements; the name is general.name, else the file name.
[[nodiscard]] Result<ModelProfile> model_profile_from_gguf(const std::string& path);
// From engine hyper-parameters (a GGUF header's, or a loaded engine::Model's); F16 KV cache.
[[nodiscard]] ModelProfile model_profile_from_config(const engine::ModelConfig& config,
                                                     std::string name,
                                                     double weight_bytes_per_param);

// What one step computes.
struct StepShape {
  std::int64_t prefill_tokens = 0;      // Prompt tokens computed (prefix-cache hits excluded).
  std::int64_t decode_tokens = 0;       // Sequences decoding one token each.
  std::int64_t attended_positions = 0;  // Sum over the step's tokens of the positions each
                                        // attends to (its context length).
  std::int64_t kv_positions = 0;        // Sum over the step's sequences of the positions whose
                                        // keys and values are read (the context at the end of
                                        // the sequence's chunk); 0 = attended_positions.
  bool after_idle = false;              // The replica had no request in flight before this step.
};

class PerfModel {
 public:
  // REQUIRES: gpu.validate().ok(), model.validate().ok(), tensor_parallel >= 1.
  PerfModel(GpuProfile gpu, ModelProfile model, std::int32_t tensor_parallel);

  [[nodiscard]] Nanos step_time(const StepShape& shape) const;
  // KV-cache blocks that fit in the replica's memory (tp devices) after the weights, using
  // `memory_fraction` of it; 0 when the weights alone do not fit.
  [[nodiscard]] std::int32_t kv_cache_blocks(std::int32_t block_tokens,
                                             double memory_fraction = 0.9) const;

  [[nodiscard]] const GpuProfile& gpu() const { return gpu_; }
  [[nodiscard]] const ModelProfile& model() const { return model_; }
  [[nodiscard]] std::int32_t tensor_parallel() const { return tp_; }

 private:
  GpuProfile gpu_;
  ModelProfile model_;
  std::int32_t tp_;

 public:
  // The summed time of `steps` consecutive pure-decode steps of `sequences` sequences whose
  // contexts total `first_context` positions in the first step and grow by `sequences` each
  // step (step j: decode_tokens = sequences, attended = kv = first_context + j * sequences), in
  // closed form (O(1)): the fast replica's aggregated decode. Equals the sum of step_time over
  // those steps except for rounding (each step_time rounds to a nanosecond; this rounds the
  // sum once), so |difference| <= steps / 2 ns. 0 when steps <= 0 or sequences <= 0.
  // Implemented in perf_model_sum.cc, which mirrors step_time's formula (a test holds them
  // equal).
  [[nodiscard]] Nanos decode_steps_time(std::int64_t sequences, std::int64_t first_context,
                                        std::int64_t steps) const;
};

}  // namespace spillway::sim
