#include "sim/perf_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <utility>

#include "core/config.h"

#include "engine/gguf.h"
#include "engine/model_config.h"

namespace spillway::sim {
namespace {

constexpr double kGB = 1e9;
constexpr double kTB = 1e12;
constexpr double kTFLOPS = 1e12;
constexpr double kActivationBytes = 2;  // BF16 activations in tensor-parallel all-reduces.

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// Efficiency factors and overheads shared by the datacenter profiles. ASSUMPTIONS, not
// datasheet figures (docs/sim/perf-model.md gives the reasoning and a sanity check).
constexpr double kHopperFlopsEfficiency = 0.6;
constexpr double kBlackwellFlopsEfficiency = 0.5;
constexpr double kBandwidthEfficiency = 0.8;
constexpr Nanos kGpuStepOverhead{1'000'000};  // 1 ms per step.
constexpr Nanos kNvlinkLatency{10'000};       // 10 us per all-reduce.

GpuProfile datacenter(std::string name, double peak_flops, double bandwidth, double memory,
                      double link, double flops_efficiency, std::string source) {
  GpuProfile p;
  p.name = std::move(name);
  p.peak_flops = peak_flops;
  p.memory_bandwidth = bandwidth;
  p.memory_bytes = memory;
  p.link_bandwidth = link;
  p.link_latency = kNvlinkLatency;
  p.flops_efficiency = flops_efficiency;
  p.bandwidth_efficiency = kBandwidthEfficiency;
  p.step_overhead = kGpuStepOverhead;
  p.source = std::move(source);
  return p;
}

std::vector<GpuProfile> builtin_gpus() {
  std::vector<GpuProfile> out;
  // NVLink figures are per direction: the datasheets' totals count both directions, and a
  // ring all-reduce sends and receives at once.
  out.push_back(datacenter("H100", 989.4 * kTFLOPS, 3.35 * kTB, 80 * kGB, 450 * kGB,
                           kHopperFlopsEfficiency,
                           "NVIDIA H100 Tensor Core GPU datasheet, H100 SXM: BF16 1,979 TFLOPS "
                           "with sparsity (989.4 dense), 80 GB HBM3 at 3.35 TB/s, NVLink 900 GB/s "
                           "(450 per direction); efficiencies and overheads are assumptions"));
  out.push_back(datacenter("H200", 989.4 * kTFLOPS, 4.8 * kTB, 141 * kGB, 450 * kGB,
                           kHopperFlopsEfficiency,
                           "NVIDIA H200 Tensor Core GPU datasheet, H200 SXM: BF16 1,979 TFLOPS "
                           "with sparsity (989.4 dense), 141 GB HBM3e at 4.8 TB/s, NVLink 900 GB/s "
                           "(450 per direction); efficiencies and overheads are assumptions"));
  out.push_back(datacenter("B200", 2250 * kTFLOPS, 8 * kTB, 180 * kGB, 900 * kGB,
                           kBlackwellFlopsEfficiency,
                           "NVIDIA HGX B200 / DGX B200 datasheets, per GPU: FP16/BF16 36 PFLOPS "
                           "with sparsity per 8 GPUs (2.25 PFLOPS dense each), 1,440 GB HBM3e per "
                           "8 GPUs (180 GB each) at 8 TB/s, NVLink 5 1.8 TB/s (900 GB/s per "
                           "direction); efficiencies and overheads are assumptions"));
  out.push_back(datacenter("GB200", 2500 * kTFLOPS, 8 * kTB, 186 * kGB, 900 * kGB,
                           kBlackwellFlopsEfficiency,
                           "NVIDIA GB200 NVL72 datasheet, per GPU (rack / 72): FP16/BF16 360 "
                           "PFLOPS with sparsity (2.5 PFLOPS dense each), 13.4 TB HBM3e (186 GB "
                           "each) at 576 TB/s (8 TB/s each), NVLink 130 TB/s (1.8 TB/s each, 900 "
                           "GB/s per direction); efficiencies and overheads are assumptions"));
  // The development machine (2 vCPUs of an AMD EPYC with AVX-512, 23.5 GiB), as fitted by
  // `spillway sim calibrate` on stories260K (1 thread, wall clock, median of 9 runs, at a load
  // average of 0.2-0.4; docs/sim/perf-model.md has the run). Recalibrate for any other machine
  // or model: these figures hold for stories260K here and nothing else.
  GpuProfile cpu;
  cpu.name = "cpu-local";
  cpu.peak_flops = 5.1798e10;
  cpu.flops_efficiency = 1;
  cpu.attention_efficiency = 0.033478;  // 1.73e9 FLOP/s of attention.
  cpu.memory_bandwidth = 4.9559e10;
  cpu.bandwidth_efficiency = 1;
  cpu.kv_bandwidth_efficiency = 0.019858;  // 9.84e8 B/s of KV reads.
  cpu.memory_bytes = 25276026880;
  cpu.link_bandwidth = cpu.memory_bandwidth;  // One process: no tensor-parallel link.
  cpu.link_latency = Nanos{0};
  cpu.step_overhead = Nanos{2971};
  cpu.idle_wake = Nanos{203077};
  cpu.source =
      "calibrate_cpu_local on the development machine: stories260K, 1 thread, wall clock, median "
      "of 9 runs, 49 steps, mean |error| 2.7%, max 11.0%; idle wake-up 203.1 us after 50 ms idle";
  out.push_back(std::move(cpu));
  return out;
}

ModelProfile shape(std::string name, std::int32_t n_layer, std::int32_t n_embd, std::int32_t n_ff,
                   std::int32_t n_head, std::int32_t n_head_kv, std::int32_t n_vocab,
                   std::int32_t n_ctx, double weight_bytes_per_param) {
  ModelProfile m;
  m.name = std::move(name);
  m.n_layer = n_layer;
  m.n_embd = n_embd;
  m.n_ff = n_ff;
  m.n_head = n_head;
  m.n_head_kv = n_head_kv;
  m.n_vocab = n_vocab;
  m.n_ctx = n_ctx;
  m.weight_bytes_per_param = weight_bytes_per_param;
  m.kv_bytes_per_element = 2;
  return m;
}

// Hyper-parameters from each model's published config.json (Hugging Face model cards); BF16
// weights, except stories260K, which is F32 as in its GGUF conversion (karpathy/tinyllamas;
// the GGUF declares a 2048-token context).
std::vector<ModelProfile> builtin_models() {
  return {
      shape("llama-3-8b", 32, 4096, 14336, 32, 8, 128256, 8192, 2),
      shape("llama-3-70b", 80, 8192, 28672, 64, 8, 128256, 8192, 2),
      shape("llama-2-7b", 32, 4096, 11008, 32, 32, 32000, 4096, 2),
      shape("tinyllama-1.1b", 22, 2048, 5632, 32, 4, 32000, 2048, 2),
      shape("stories260k", 5, 64, 172, 8, 4, 512, 2048, 4),
  };
}

Status positive(double value, std::string_view field) {
  if (!(value > 0) || !std::isfinite(value)) {
    return make_error(ErrorCode::kInvalidArgument, "{}: must be a positive number (got {})", field,
                      value);
  }
  return Status();
}

Status efficiency(double value, std::string_view field) {
  if (!(value > 0 && value <= 1)) {
    return make_error(ErrorCode::kInvalidArgument, "{}: must be in (0, 1] (got {})", field, value);
  }
  return Status();
}

std::string toml_string(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

double micros(Nanos t) {
  return static_cast<double>(t.count()) / 1e3;
}

Nanos from_micros(double us) {
  return Nanos{std::llround(us * 1e3)};
}

}  // namespace

Status GpuProfile::validate() const {
  SPW_TRY(positive(peak_flops, "peak_flops"));
  SPW_TRY(positive(memory_bandwidth, "memory_bandwidth"));
  SPW_TRY(positive(memory_bytes, "memory_bytes"));
  SPW_TRY(positive(link_bandwidth, "link_bandwidth"));
  SPW_TRY(efficiency(flops_efficiency, "flops_efficiency"));
  if (attention_efficiency != 0) SPW_TRY(efficiency(attention_efficiency, "attention_efficiency"));
  if (kv_bandwidth_efficiency != 0) {
    SPW_TRY(efficiency(kv_bandwidth_efficiency, "kv_bandwidth_efficiency"));
  }
  SPW_TRY(efficiency(bandwidth_efficiency, "bandwidth_efficiency"));
  if (link_latency < Nanos{0}) {
    return make_error(ErrorCode::kInvalidArgument, "link_latency: negative");
  }
  if (step_overhead < Nanos{0}) {
    return make_error(ErrorCode::kInvalidArgument, "step_overhead: negative");
  }
  if (idle_wake < Nanos{0}) {
    return make_error(ErrorCode::kInvalidArgument, "idle_wake: negative");
  }
  return Status();
}

Result<GpuProfile> builtin_gpu_profile(std::string_view name) {
  const std::string key = lower(name);
  for (GpuProfile& p : builtin_gpus()) {
    if (lower(p.name) == key) return std::move(p);
  }
  return make_error(ErrorCode::kInvalidArgument, "unknown GPU profile '{}' (known: {})", name,
                    fmt::join(builtin_gpu_profile_names(), ", "));
}

std::vector<std::string> builtin_gpu_profile_names() {
  std::vector<std::string> names;
  for (const GpuProfile& p : builtin_gpus())
    names.push_back(p.name);
  return names;
}

Result<GpuProfile> parse_gpu_profile(std::string_view toml_text, const std::string& source_name) {
  SPW_ASSIGN_OR_RETURN(ConfigDocument doc, ConfigDocument::parse(toml_text, source_name));
  SPW_TRY(doc.root().check_keys({"profile"}));
  SPW_ASSIGN_OR_RETURN(ConfigTable t, doc.root().table("profile"));
  SPW_TRY(t.check_keys({"name", "peak_flops", "memory_bandwidth", "memory_bytes", "link_bandwidth",
                        "link_latency_us", "flops_efficiency", "attention_efficiency",
                        "bandwidth_efficiency", "kv_bandwidth_efficiency", "step_overhead_us",
                        "idle_wake_us", "source"}));
  constexpr double kHuge = 1e30;
  constexpr double kMaxMicros = 1e9;  // 1000 s: far beyond any step or all-reduce.
  GpuProfile p;
  SPW_ASSIGN_OR_RETURN(p.name, t.string("name"));
  if (p.name.empty()) return t.error_at("name", "must not be empty");
  SPW_ASSIGN_OR_RETURN(p.peak_flops, t.number("peak_flops", 0, kHuge));
  SPW_ASSIGN_OR_RETURN(p.memory_bandwidth, t.number("memory_bandwidth", 0, kHuge));
  SPW_ASSIGN_OR_RETURN(p.memory_bytes, t.number("memory_bytes", 0, kHuge));
  SPW_ASSIGN_OR_RETURN(p.link_bandwidth, t.number("link_bandwidth", 0, kHuge));
  SPW_ASSIGN_OR_RETURN(const double latency_us, t.number("link_latency_us", 0, kMaxMicros));
  SPW_ASSIGN_OR_RETURN(p.flops_efficiency, t.number("flops_efficiency", 0, 1));
  SPW_ASSIGN_OR_RETURN(p.attention_efficiency, t.number_or("attention_efficiency", 0, 0, 1));
  SPW_ASSIGN_OR_RETURN(p.bandwidth_efficiency, t.number("bandwidth_efficiency", 0, 1));
  SPW_ASSIGN_OR_RETURN(p.kv_bandwidth_efficiency, t.number_or("kv_bandwidth_efficiency", 0, 0, 1));
  SPW_ASSIGN_OR_RETURN(const double overhead_us, t.number("step_overhead_us", 0, kMaxMicros));
  SPW_ASSIGN_OR_RETURN(const double idle_wake_us, t.number_or("idle_wake_us", 0, 0, kMaxMicros));
  SPW_ASSIGN_OR_RETURN(p.source, t.string_or("source", ""));
  p.link_latency = from_micros(latency_us);
  p.step_overhead = from_micros(overhead_us);
  p.idle_wake = from_micros(idle_wake_us);
  // The ranges above admit 0 for rates and efficiencies; validate() names what must be > 0.
  for (const auto& [key, value] : {std::pair<std::string_view, double>{"peak_flops", p.peak_flops},
                                   {"memory_bandwidth", p.memory_bandwidth},
                                   {"memory_bytes", p.memory_bytes},
                                   {"link_bandwidth", p.link_bandwidth},
                                   {"flops_efficiency", p.flops_efficiency},
                                   {"bandwidth_efficiency", p.bandwidth_efficiency}}) {
    if (!(value > 0)) return t.error_at(key, "must be greater than 0");
  }
  SPW_TRY(p.validate());
  return p;
}

Result<GpuProfile> load_gpu_profile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::kNotFound, "{}: cannot open the GPU profile", path);
  std::string text;
  char buf[4096];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    text.append(buf, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxConfigFileBytes) {
      return make_error(ErrorCode::kInvalidArgument, "{}: larger than {} bytes", path,
                        kMaxConfigFileBytes);
    }
  }
  return parse_gpu_profile(text, path);
}

std::string gpu_profile_to_toml(const GpuProfile& p) {
  std::string out = "# Spillway simulator GPU profile (sim/perf_model.h); times in microseconds.\n";
  out += "[profile]\n";
  out += fmt::format("name = {}\n", toml_string(p.name));
  out += fmt::format("peak_flops = {}\n", p.peak_flops);
  out += fmt::format("memory_bandwidth = {}\n", p.memory_bandwidth);
  out += fmt::format("memory_bytes = {}\n", p.memory_bytes);
  out += fmt::format("link_bandwidth = {}\n", p.link_bandwidth);
  out += fmt::format("link_latency_us = {}\n", micros(p.link_latency));
  out += fmt::format("flops_efficiency = {}\n", p.flops_efficiency);
  out += fmt::format("attention_efficiency = {}\n", p.attention_efficiency);
  out += fmt::format("bandwidth_efficiency = {}\n", p.bandwidth_efficiency);
  out += fmt::format("kv_bandwidth_efficiency = {}\n", p.kv_bandwidth_efficiency);
  out += fmt::format("step_overhead_us = {}\n", micros(p.step_overhead));
  out += fmt::format("idle_wake_us = {}\n", micros(p.idle_wake));
  out += fmt::format("source = {}\n", toml_string(p.source));
  return out;
}

Status write_gpu_profile(const GpuProfile& profile, const std::string& path) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return make_error(ErrorCode::kInternal, "{}: cannot open for writing", path);
  const std::string text = gpu_profile_to_toml(profile);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) return make_error(ErrorCode::kInternal, "{}: write failed", path);
  return Status();
}

double ModelProfile::params() const {
  const double head_dim = static_cast<double>(n_embd) / n_head;
  const double q_dim = head_dim * n_head;
  const double kv_dim = head_dim * n_head_kv;
  const double e = n_embd;
  const double per_layer =
      e * q_dim + 2 * e * kv_dim + q_dim * e + 3 * e * static_cast<double>(n_ff) + 2 * e;
  return n_layer * per_layer + 2 * static_cast<double>(n_vocab) * e + e;
}

double ModelProfile::weight_bytes() const {
  return params() * weight_bytes_per_param;
}

double ModelProfile::kv_bytes_per_token() const {
  const double head_dim = static_cast<double>(n_embd) / n_head;
  return 2.0 * n_layer * n_head_kv * head_dim * kv_bytes_per_element;
}

Status ModelProfile::validate() const {
  for (const auto& [field, value] : {std::pair<std::string_view, std::int32_t>{"n_layer", n_layer},
                                     {"n_embd", n_embd},
                                     {"n_ff", n_ff},
                                     {"n_head", n_head},
                                     {"n_head_kv", n_head_kv},
                                     {"n_vocab", n_vocab},
                                     {"n_ctx", n_ctx}}) {
    if (value < 1) {
      return make_error(ErrorCode::kInvalidArgument, "model {}: {}: must be >= 1 (got {})", name,
                        field, value);
    }
  }
  if (n_embd % n_head != 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "model {}: n_head: {} does not divide n_embd = {}", name, n_head, n_embd);
  }
  if (n_head_kv > n_head || n_head % n_head_kv != 0) {
    return make_error(ErrorCode::kInvalidArgument,
                      "model {}: n_head_kv: {} does not divide n_head = {}", name, n_head_kv,
                      n_head);
  }
  SPW_TRY(positive(weight_bytes_per_param, "weight_bytes_per_param"));
  SPW_TRY(positive(kv_bytes_per_element, "kv_bytes_per_element"));
  return Status();
}

Result<ModelProfile> builtin_model_profile(std::string_view name) {
  const std::string key = lower(name);
  for (ModelProfile& m : builtin_models()) {
    if (m.name == key) return std::move(m);
  }
  return make_error(ErrorCode::kInvalidArgument, "unknown model shape '{}' (known: {})", name,
                    fmt::join(builtin_model_profile_names(), ", "));
}

std::vector<std::string> builtin_model_profile_names() {
  std::vector<std::string> names;
  for (const ModelProfile& m : builtin_models())
    names.push_back(m.name);
  return names;
}

ModelProfile model_profile_from_config(const engine::ModelConfig& c, std::string name,
                                       double weight_bytes_per_param) {
  ModelProfile m;
  m.name = std::move(name);
  m.n_layer = c.n_layer;
  m.n_embd = c.n_embd;
  m.n_ff = c.n_ff;
  m.n_head = c.n_head;
  m.n_head_kv = c.n_head_kv;
  m.n_vocab = c.n_vocab;
  m.n_ctx = c.n_ctx_train;
  m.weight_bytes_per_param = weight_bytes_per_param;
  m.kv_bytes_per_element = 2;
  return m;
}

Result<ModelProfile> model_profile_from_gguf(const std::string& path) {
  // Mapping the file reads only the pages touched: the header and the tensor index.
  SPW_ASSIGN_OR_RETURN(engine::GgufFile file, engine::GgufFile::open(path));
  auto config = engine::model_config_from_gguf(file);
  if (!config.ok()) {
    return make_error(config.error().code(), "{}: {}", path, config.error().message());
  }
  double bytes = 0;
  double elements = 0;
  for (const engine::GgufTensorInfo& t : file.tensors()) {
    if (t.shape.size() != 2) continue;
    bytes += static_cast<double>(t.nbytes);
    elements += static_cast<double>(t.elements());
  }
  if (elements <= 0) {
    return make_error(ErrorCode::kInvalidArgument, "{}: the file holds no weight matrices", path);
  }
  std::string name = std::filesystem::path(path).stem().string();
  if (const engine::GgufValue* v = file.find("general.name")) {
    if (auto s = v->as_string(); s.ok() && !s->empty()) name = std::string(*s);
  }
  ModelProfile m = model_profile_from_config(*config, std::move(name), bytes / elements);
  if (Status ok = m.validate(); !ok.ok()) {
    return make_error(ok.error().code(), "{}: {}", path, ok.error().message());
  }
  return m;
}

PerfModel::PerfModel(GpuProfile gpu, ModelProfile model, std::int32_t tensor_parallel)
    : gpu_(std::move(gpu)), model_(std::move(model)), tp_(std::max(tensor_parallel, 1)) {}

Nanos PerfModel::step_time(const StepShape& shape) const {
  const double tokens = static_cast<double>(shape.prefill_tokens + shape.decode_tokens);
  if (tokens <= 0) return Nanos{0};
  const double tp = tp_;
  const double attended = static_cast<double>(shape.attended_positions);
  const double kv_read =
      static_cast<double>(shape.kv_positions > 0 ? shape.kv_positions : shape.attended_positions);
  const double matmul_flops = 2 * model_.params() * tokens;
  const double attention_flops = 4.0 * model_.n_layer * model_.n_embd * attended;
  const double kv_bytes = model_.kv_bytes_per_token() * kv_read;
  const double attention_eff = gpu_.effective_attention_efficiency();
  const double compute_s =
      attention_eff == gpu_.flops_efficiency
          ? (matmul_flops + attention_flops) / (tp * gpu_.peak_flops * gpu_.flops_efficiency)
          : matmul_flops / (tp * gpu_.peak_flops * gpu_.flops_efficiency) +
                attention_flops / (tp * gpu_.peak_flops * attention_eff);
  const double kv_eff = gpu_.effective_kv_bandwidth_efficiency();
  const double memory_s =
      kv_eff == gpu_.bandwidth_efficiency
          ? (model_.weight_bytes() + kv_bytes) /
                (tp * gpu_.memory_bandwidth * gpu_.bandwidth_efficiency)
          : model_.weight_bytes() / (tp * gpu_.memory_bandwidth * gpu_.bandwidth_efficiency) +
                kv_bytes / (tp * gpu_.memory_bandwidth * kv_eff);
  double comm_s = 0;
  if (tp_ > 1) {
    const double payload = tokens * model_.n_embd * kActivationBytes;
    const double one =
        to_seconds(gpu_.link_latency) + 2 * (tp - 1) / tp * payload / gpu_.link_bandwidth;
    comm_s = 2.0 * model_.n_layer * one;
  }
  const double total_ns = (std::max(compute_s, memory_s) + comm_s) * 1e9;
  // A step longer than ~292 years is not a step; clamp instead of overflowing.
  const double capped = std::min(total_ns, 9e18);
  const Nanos wake = shape.after_idle ? gpu_.idle_wake : Nanos{0};
  return gpu_.step_overhead + wake + Nanos{std::llround(capped)};
}

std::int32_t PerfModel::kv_cache_blocks(std::int32_t block_tokens, double memory_fraction) const {
  if (block_tokens < 1 || !(memory_fraction > 0)) return 0;
  const double free_bytes =
      tp_ * gpu_.memory_bytes * std::min(memory_fraction, 1.0) - model_.weight_bytes();
  if (free_bytes <= 0) return 0;
  const double blocks = std::floor(free_bytes / (model_.kv_bytes_per_token() * block_tokens));
  return static_cast<std::int32_t>(
      std::min(blocks, static_cast<double>(std::numeric_limits<std::int32_t>::max())));
}

}  // namespace spillway::sim
