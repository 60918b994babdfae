// libFuzzer target for the GGUF reader: any input must parse or fail with an Error, and every
// view a successful parse hands out must stay inside the input (ASan checks the reads below).
#include <cstddef>
#include <cstdint>
#include <span>

#include "engine/gguf.h"

namespace {

using spillway::engine::GgufFile;
using spillway::engine::GgufKv;
using spillway::engine::GgufLimits;
using spillway::engine::GgufTensorInfo;

// Volatile so the compiler keeps every read.
volatile std::uint64_t g_sink = 0;

void touch(const GgufFile& file) {
  std::uint64_t sum = file.version() + file.alignment() + file.data_offset();
  for (const GgufKv& kv : file.metadata()) {
    sum += kv.key.empty() ? 0 : static_cast<unsigned char>(kv.key.back());
    if (file.find(kv.key) != &kv.value) __builtin_trap();
    const auto& v = kv.value;
    if (auto u = v.as_u64(); u.ok()) sum += *u;
    if (auto i = v.as_i64(); i.ok()) sum += static_cast<std::uint64_t>(*i);
    if (auto d = v.as_f64(); d.ok()) sum += *d > 0 ? 1 : 0;
    if (auto b = v.as_bool(); b.ok()) sum += *b ? 1 : 0;
    if (auto s = v.as_string(); s.ok() && !s->empty()) sum += static_cast<unsigned char>(s->back());
    for (const std::byte b : v.array_bytes())
      sum += static_cast<std::uint8_t>(b);
    for (std::uint64_t i = 0; i < v.array_size(); ++i) {
      if (auto s = v.string_at(i); s.ok()) {
        for (const char c : *s)
          sum += static_cast<unsigned char>(c);
      }
      if (auto n = v.int_at(i); n.ok()) sum += static_cast<std::uint64_t>(*n);
      if (auto f = v.f32_at(i); f.ok()) sum += *f > 0 ? 1 : 0;
    }
    (void)v.string_at(v.array_size());  // One past the end must be an error, not a read.
  }
  for (const GgufTensorInfo& t : file.tensors()) {
    if (file.find_tensor(t.name) != &t) __builtin_trap();
    sum += static_cast<std::uint64_t>(t.elements()) + t.offset;
    for (std::size_t i = 0; i < t.nbytes; ++i)
      sum += static_cast<std::uint8_t>(t.data[i]);
  }
  g_sink = g_sink + sum;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  if (auto file = GgufFile::parse(bytes); file.ok()) touch(*file);
  // Tight limits reach the limit checks with small inputs.
  GgufLimits small;
  small.max_tensors = 4;
  small.max_kv_pairs = 4;
  small.max_string_bytes = 16;
  small.max_array_elements = 8;
  small.max_alignment = 64;
  if (auto file = GgufFile::parse(bytes, small); file.ok()) touch(*file);
  return 0;
}
