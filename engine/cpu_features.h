// Run-time probe of the x86 instruction sets the matmul kernels use, and the choice of kernel
// level. One binary runs on any x86-64: the probe checks both the CPU (CPUID) and that the OS
// saves the wider registers (XGETBV), and the kernels of a level run only if both agree.
//
// SPILLWAY_ISA=scalar|avx2|avx512 in the environment caps the level (for tests and benchmarks);
// it can lower the level, never raise it above what the machine supports. Other values are
// ignored.
//
// Thread-safety: pure functions, except selected_isa(), which reads the environment once and
// caches the result (safe for concurrent use).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace spillway::engine {

enum class IsaLevel { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;
  bool os_avx = false;     // XCR0 has the SSE and AVX state bits.
  bool os_avx512 = false;  // XCR0 also has the opmask and upper-ZMM state bits.
};

[[nodiscard]] CpuFeatures detect_cpu_features();

// The highest level whose kernels can run: kAvx512 needs F, BW, VL, VNNI, BF16, FMA, F16C and
// OS support; kAvx2 needs AVX2, FMA, F16C and OS support.
[[nodiscard]] IsaLevel max_isa(const CpuFeatures& features);

// "scalar", "avx2", "avx512".
[[nodiscard]] std::string_view isa_name(IsaLevel level);
[[nodiscard]] std::optional<IsaLevel> parse_isa(std::string_view name);

// min(supported, requested) when `requested` names a level; `supported` otherwise.
[[nodiscard]] IsaLevel cap_isa(IsaLevel supported, std::optional<IsaLevel> requested);

// The level the engine uses: max_isa(detect_cpu_features()) capped by SPILLWAY_ISA. Computed on
// first call.
[[nodiscard]] IsaLevel selected_isa();

// One line naming the features found and the level chosen, e.g. for `spillway --version`.
[[nodiscard]] std::string describe_cpu(const CpuFeatures& features, IsaLevel selected);

}  // namespace spillway::engine
