#include "engine/kernels.h"

#include <cstdio>
#include <cstdlib>

namespace spillway::engine {

const KernelTable& kernel_table(IsaLevel level) {
  switch (level) {
    case IsaLevel::kAvx512:
      return avx512_kernels();
    case IsaLevel::kAvx2:
      return avx2_kernels();
    case IsaLevel::kScalar:
      break;
  }
  return scalar_kernels();
}

bool has_kernel(GgmlType type) {
  return ggml_type_info(type).supported;
}

ActFormat act_format(GgmlType type) {
  switch (type) {
    case GgmlType::kQ8_0:
    case GgmlType::kQ4_0:
      return ActFormat::kQ8_32;
    case GgmlType::kQ4_K:
    case GgmlType::kQ6_K:
      return ActFormat::kQ8_256;
    default:
      return ActFormat::kFloat;
  }
}

RowsKernel rows_kernel(const KernelTable& t, GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
      return t.f32;
    case GgmlType::kF16:
      return t.f16;
    case GgmlType::kBF16:
      return t.bf16;
    case GgmlType::kQ8_0:
      return t.q8_0;
    case GgmlType::kQ4_0:
      return t.q4_0;
    case GgmlType::kQ4_K:
      return t.q4_k;
    case GgmlType::kQ6_K:
      return t.q6_k;
    default:
      std::fprintf(stderr, "spillway: rows_kernel: no kernel for type %u\n",
                   static_cast<unsigned>(type));
      std::abort();
  }
}

RowsKernel panel_kernel(const KernelTable& t, GgmlType type) {
  switch (type) {
    case GgmlType::kF16:
      return t.f16_x16;
    case GgmlType::kQ8_0:
      return t.q8_0_x16;
    case GgmlType::kQ4_0:
      return t.q4_0_x16;
    default:
      return nullptr;
  }
}

}  // namespace spillway::engine
