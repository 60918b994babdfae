#include "engine/cpu_features.h"

#include <cpuid.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>

namespace spillway::engine {
namespace {

struct CpuidRegs {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs cpuid(unsigned leaf, unsigned subleaf) {
  CpuidRegs r;
  if (__get_cpuid_count(leaf, subleaf, &r.eax, &r.ebx, &r.ecx, &r.edx) == 0) return CpuidRegs{};
  return r;
}

// XGETBV(0) without needing -mxsave for the _xgetbv intrinsic. REQUIRES: OSXSAVE set.
std::uint64_t xcr0() {
  std::uint32_t lo = 0;
  std::uint32_t hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
}

bool bit(unsigned reg, int n) {
  return ((reg >> n) & 1u) != 0;
}

}  // namespace

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
  const unsigned max_leaf = __get_cpuid_max(0, nullptr);
  if (max_leaf < 1) return f;
  const CpuidRegs l1 = cpuid(1, 0);
  f.fma = bit(l1.ecx, 12);
  f.f16c = bit(l1.ecx, 29);
  const bool osxsave = bit(l1.ecx, 27);
  const bool avx = bit(l1.ecx, 28);
  if (osxsave && avx) {
    const std::uint64_t xcr = xcr0();
    f.os_avx = (xcr & 0x6) == 0x6;                   // XMM and YMM state.
    f.os_avx512 = f.os_avx && (xcr & 0xE0) == 0xE0;  // Opmask, ZMM_Hi256, Hi16_ZMM.
  }
  if (max_leaf >= 7) {
    const CpuidRegs l7 = cpuid(7, 0);
    f.avx2 = bit(l7.ebx, 5);
    f.avx512f = bit(l7.ebx, 16);
    f.avx512bw = bit(l7.ebx, 30);
    f.avx512vl = bit(l7.ebx, 31);
    f.avx512vnni = bit(l7.ecx, 11);
    if (l7.eax >= 1) f.avx512bf16 = bit(cpuid(7, 1).eax, 5);
  }
  return f;
}

IsaLevel max_isa(const CpuFeatures& f) {
  const bool avx2 = f.os_avx && f.avx2 && f.fma && f.f16c;
  if (!avx2) return IsaLevel::kScalar;
  const bool avx512 =
      f.os_avx512 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512vnni && f.avx512bf16;
  return avx512 ? IsaLevel::kAvx512 : IsaLevel::kAvx2;
}

std::string_view isa_name(IsaLevel level) {
  switch (level) {
    case IsaLevel::kScalar:
      return "scalar";
    case IsaLevel::kAvx2:
      return "avx2";
    case IsaLevel::kAvx512:
      return "avx512";
  }
  return "scalar";
}

std::optional<IsaLevel> parse_isa(std::string_view name) {
  for (IsaLevel level : {IsaLevel::kScalar, IsaLevel::kAvx2, IsaLevel::kAvx512}) {
    if (name == isa_name(level)) return level;
  }
  return std::nullopt;
}

IsaLevel cap_isa(IsaLevel supported, std::optional<IsaLevel> requested) {
  if (!requested) return supported;
  return static_cast<IsaLevel>(std::min(static_cast<int>(supported), static_cast<int>(*requested)));
}

IsaLevel selected_isa() {
  static const IsaLevel level = [] {
    const char* env = std::getenv("SPILLWAY_ISA");
    return cap_isa(max_isa(detect_cpu_features()), env != nullptr ? parse_isa(env) : std::nullopt);
  }();
  return level;
}

std::string describe_cpu(const CpuFeatures& f, IsaLevel selected) {
  std::string out = "cpu:";
  const std::pair<const char*, bool> flags[] = {{"avx2", f.avx2},
                                                {"fma", f.fma},
                                                {"f16c", f.f16c},
                                                {"avx512f", f.avx512f},
                                                {"avx512bw", f.avx512bw},
                                                {"avx512vl", f.avx512vl},
                                                {"avx512vnni", f.avx512vnni},
                                                {"avx512bf16", f.avx512bf16},
                                                {"os-avx", f.os_avx},
                                                {"os-avx512", f.os_avx512}};
  for (const auto& [name, present] : flags) {
    if (present) {
      out += ' ';
      out += name;
    }
  }
  out += "; kernels: ";
  out += isa_name(selected);
  return out;
}

}  // namespace spillway::engine
