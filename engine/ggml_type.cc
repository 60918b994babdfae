#include "engine/ggml_type.h"

#include <array>
#include <limits>

namespace spillway::engine {
namespace {

struct Entry {
  std::uint32_t raw;
  GgmlTypeInfo info;
};

// Block geometry from ggml's type traits (QK4_0 = QK8_0 = 32, QK_K = 256).
constexpr std::array kTypes = {
    Entry{0, {"f32", 1, 4, true}},       Entry{1, {"f16", 1, 2, true}},
    Entry{2, {"q4_0", 32, 18, true}},    Entry{3, {"q4_1", 32, 20, false}},
    Entry{6, {"q5_0", 32, 22, false}},   Entry{7, {"q5_1", 32, 24, false}},
    Entry{8, {"q8_0", 32, 34, true}},    Entry{9, {"q8_1", 32, 36, false}},
    Entry{10, {"q2_K", 256, 84, false}}, Entry{11, {"q3_K", 256, 110, false}},
    Entry{12, {"q4_K", 256, 144, true}}, Entry{13, {"q5_K", 256, 176, false}},
    Entry{14, {"q6_K", 256, 210, true}}, Entry{15, {"q8_K", 256, 292, false}},
    Entry{30, {"bf16", 1, 2, true}},
};

}  // namespace

std::optional<GgmlTypeInfo> ggml_type_info(std::uint32_t raw_type) {
  for (const Entry& e : kTypes) {
    if (e.raw == raw_type) return e.info;
  }
  return std::nullopt;
}

GgmlTypeInfo ggml_type_info(GgmlType type) {
  return *ggml_type_info(static_cast<std::uint32_t>(type));
}

std::optional<std::size_t> ggml_row_bytes(GgmlType type, std::int64_t elements) {
  const GgmlTypeInfo info = ggml_type_info(type);
  if (elements < 0 || elements % info.block_elements != 0) return std::nullopt;
  const auto blocks = static_cast<std::uint64_t>(elements / info.block_elements);
  if (blocks > std::numeric_limits<std::size_t>::max() / info.block_bytes) return std::nullopt;
  return blocks * info.block_bytes;
}

}  // namespace spillway::engine
