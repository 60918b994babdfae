// Writer for GGUF v3 files (alignment 32), the counterpart of engine/gguf.h. Used by tests
// and by `spillway mkmodel` to produce models of several GB, so tensor data is streamed to the
// file: it is either referenced in the caller's memory or produced chunk by chunk by a
// callback, and the writer never holds a copy of a whole model.
//
// Usage: add metadata and tensors in the order they should appear, then write(). Problems with
// what was added (duplicate keys or names, invalid shapes) are reported by write().
//
// Thread-safety: none; use from one thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

#include "engine/ggml_type.h"
#include "engine/gguf.h"

namespace spillway::engine {

class GgufWriter {
 public:
  // Produces rows [first_row, first_row + rows.size() / row_bytes) of a tensor into `rows`,
  // where a row is shape[0] elements. Called in row order, with whole rows, a few MiB at a
  // time; `rows` arrives zeroed. An error aborts write().
  using TensorFill = std::function<Status(std::int64_t first_row, std::span<std::byte> rows)>;

  void add_u32(std::string_view key, std::uint32_t value);
  void add_i32(std::string_view key, std::int32_t value);
  void add_u64(std::string_view key, std::uint64_t value);
  void add_f32(std::string_view key, float value);
  void add_bool(std::string_view key, bool value);
  void add_string(std::string_view key, std::string_view value);
  void add_string_array(std::string_view key, std::span<const std::string> values);
  void add_f32_array(std::string_view key, std::span<const float> values);
  void add_i32_array(std::string_view key, std::span<const std::int32_t> values);

  // A tensor whose bytes live in the caller's memory. REQUIRES: `data` stays valid until
  // write() returns. write() fails if data.size() is not the tensor's size.
  void add_tensor(std::string_view name, GgmlType type, std::vector<std::int64_t> shape,
                  std::span<const std::byte> data);
  // A tensor whose bytes `fill` produces during write().
  void add_tensor(std::string_view name, GgmlType type, std::vector<std::int64_t> shape,
                  TensorFill fill);

  // Writes the file to `path` + ".tmp" and renames it to `path` on success, so a failed write
  // never leaves a partial file under `path`. May be called more than once.
  [[nodiscard]] Status write(const std::string& path) const;
  // The whole file in memory; for tests and small files.
  [[nodiscard]] Result<std::vector<std::byte>> serialize() const;

 private:
  struct Kv {
    std::string key;
    GgufValueType type;
    std::vector<std::byte> bytes;  // The encoded value, after the type field.
  };
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<std::int64_t> shape;
    std::span<const std::byte> data;  // Used when `fill` is empty.
    TensorFill fill;
  };

  void add_kv(std::string_view key, GgufValueType type, std::vector<std::byte> bytes);
  // Writes everything through `sink`, which returns false on an I/O failure.
  [[nodiscard]] Status emit(const std::function<bool(std::span<const std::byte>)>& sink) const;

  std::vector<Kv> kvs_;
  std::vector<Tensor> tensors_;
};

}  // namespace spillway::engine
