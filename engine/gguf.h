// Reader for GGUF files (versions 2 and 3), the model format of ggml / llama.cpp.
//
// A GgufFile is a validated index over the file's bytes: metadata values and tensor data are
// views into those bytes, nothing is copied. Every count, length, offset and size in the header
// is checked against the file size and against GgufLimits before it is used, so a hostile or
// truncated file yields an Error (never a crash, an abort or a huge allocation).
//
// Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv, n_kv x (string key,
// u32 type, value), n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type,
// u64 offset), padding to `general.alignment` (default 32), then the data section. A string is
// u64 length + bytes (not NUL-terminated). Big-endian files are rejected.
//
// Thread-safety: a GgufFile and everything it hands out are immutable after construction;
// concurrent reads are safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"

#include "engine/ggml_type.h"

namespace spillway::engine {

// Metadata value types, numbered as in the GGUF spec (part of the format: never renumber).
enum class GgufValueType : std::uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// "uint8", "string", "array", ...; "unknown" for numbers outside the spec.
[[nodiscard]] std::string_view gguf_value_type_name(GgufValueType type);

// Caps on what a header may declare. They exist so that parsing cost is bounded by the file
// size and these numbers, whatever the header claims. Defaults are far above any real model
// (Llama-3-405B has ~1.1k tensors and ~40 KV pairs; the largest vocabularies ~256k entries).
struct GgufLimits {
  std::uint64_t max_tensors = 1u << 16;
  std::uint64_t max_kv_pairs = 1u << 16;
  std::uint64_t max_key_bytes = 65535;          // The spec's limit for keys.
  std::uint64_t max_tensor_name_bytes = 64;     // The spec's limit for tensor names.
  std::uint64_t max_string_bytes = 16u << 20;   // Chat templates are the longest (~10 KiB).
  std::uint64_t max_array_elements = 1u << 24;  // Vocab tokens, scores, merges.
  std::uint32_t max_dims = 4;                   // ggml's GGML_MAX_DIMS.
  std::uint64_t max_alignment = 1u << 16;       // general.alignment.
};

// One metadata value: a scalar, a string, or an array of scalars or strings (arrays of arrays
// are rejected by the parser). Strings and array elements are views into the file's bytes and
// live as long as the GgufFile that produced the value.
//
// Accessors never assume the stored type: they convert where the conversion is exact (any
// integer type to as_u64/as_i64 when the value fits; integers and floats to as_f64) and
// otherwise return kInvalidArgument (wrong type) or kOutOfRange (does not fit).
class GgufValue {
 public:
  [[nodiscard]] GgufValueType type() const { return type_; }
  [[nodiscard]] bool is_array() const { return type_ == GgufValueType::kArray; }

  // Scalars and strings.
  [[nodiscard]] Result<std::uint64_t> as_u64() const;
  [[nodiscard]] Result<std::int64_t> as_i64() const;
  [[nodiscard]] Result<double> as_f64() const;
  [[nodiscard]] Result<bool> as_bool() const;
  [[nodiscard]] Result<std::string_view> as_string() const;

  // Arrays. array_type() is meaningful only when is_array(); array_size() is 0 otherwise.
  [[nodiscard]] GgufValueType array_type() const { return array_type_; }
  [[nodiscard]] std::uint64_t array_size() const { return is_array() ? count_ : 0; }
  // Element i; kOutOfRange past the end, kInvalidArgument for the wrong element type.
  [[nodiscard]] Result<std::string_view> string_at(std::uint64_t i) const;
  [[nodiscard]] Result<std::int64_t> int_at(std::uint64_t i) const;  // Integer element types.
  [[nodiscard]] Result<float> f32_at(std::uint64_t i) const;         // Float or integer elements.
  // The raw little-endian elements of an array of scalars (empty for string arrays), for bulk
  // copies, e.g. of token scores stored as float32.
  [[nodiscard]] std::span<const std::byte> array_bytes() const;

 private:
  friend class GgufParser;
  GgufValue() = default;

  // Scalar at `p` of type `t`, as the widest type of its kind.
  Result<std::uint64_t> scalar_u64(GgufValueType t, const std::byte* p) const;
  Result<std::int64_t> scalar_i64(GgufValueType t, const std::byte* p) const;
  Result<double> scalar_f64(GgufValueType t, const std::byte* p) const;

  GgufValueType type_ = GgufValueType::kUint8;
  GgufValueType array_type_ = GgufValueType::kUint8;
  // Scalars and scalar arrays: the first element's bytes. Strings: the characters.
  const std::byte* data_ = nullptr;
  std::uint64_t count_ = 0;  // Array elements, or string length.
  // String arrays: byte offset of each element's length prefix from data_, so that
  // string_at() is O(1). Bounded by the file size (each element takes >= 8 bytes).
  std::vector<std::uint64_t> string_offsets_;
};

struct GgufKv {
  std::string_view key;  // Points into the file's bytes.
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<std::int64_t> shape;  // ggml `ne`: element counts, innermost (contiguous) first.
  std::uint64_t offset = 0;         // GGUF: from the start of the data section.
  const std::byte* data = nullptr;  // Into the file's bytes; valid while the file lives.
  std::size_t nbytes = 0;

  [[nodiscard]] std::int64_t elements() const;
};

// A read-only, private memory mapping of a whole file. Movable; unmaps when destroyed.
// (Shared by the GGUF and llama2.c readers.) REQUIRES: nobody truncates the file while it is
// mapped; reads past the new end would fault (SIGBUS), which no check here can prevent.
class MappedFile {
 public:
  // Errors: kNotFound (no such file), kPermissionDenied, kInvalidArgument (not a regular file), or
  // kInternal for other OS failures; messages are prefixed with the path.
  [[nodiscard]] static Result<MappedFile> open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  [[nodiscard]] std::span<const std::byte> bytes() const { return {data_, size_}; }

 private:
  const std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  bool mapped_ = false;  // False for empty files, which cannot be mmapped.
};

class GgufFile {
 public:
  // Maps `path` and parses it. Errors are prefixed with the path.
  [[nodiscard]] static Result<GgufFile> open(const std::string& path,
                                             const GgufLimits& limits = {});
  // Parses bytes owned by the caller. REQUIRES: `bytes` outlives the returned file and every
  // view taken from it.
  [[nodiscard]] static Result<GgufFile> parse(std::span<const std::byte> bytes,
                                              const GgufLimits& limits = {});

  GgufFile(GgufFile&&) noexcept = default;
  GgufFile& operator=(GgufFile&&) noexcept = default;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;
  ~GgufFile() = default;

  [[nodiscard]] std::uint32_t version() const { return version_; }
  [[nodiscard]] std::uint64_t alignment() const { return alignment_; }
  // Absolute file offset of the data section (may equal the file size when there are no
  // tensors).
  [[nodiscard]] std::size_t data_offset() const { return data_offset_; }
  [[nodiscard]] std::span<const std::byte> bytes() const { return bytes_; }

  // All KV pairs in file order; keys are unique.
  [[nodiscard]] std::span<const GgufKv> metadata() const { return kvs_; }
  // nullptr when absent.
  [[nodiscard]] const GgufValue* find(std::string_view key) const;

  // Typed lookups: kNotFound naming the key when absent, otherwise the conversion rules of
  // GgufValue (errors name the key).
  [[nodiscard]] Result<std::string_view> get_string(std::string_view key) const;
  [[nodiscard]] Result<std::uint64_t> get_u64(std::string_view key) const;
  [[nodiscard]] Result<std::int64_t> get_i64(std::string_view key) const;
  [[nodiscard]] Result<float> get_f32(std::string_view key) const;
  [[nodiscard]] Result<bool> get_bool(std::string_view key) const;

  // Tensors in file order; names are unique, and every tensor's data lies within the file.
  [[nodiscard]] std::span<const GgufTensorInfo> tensors() const { return tensors_; }
  [[nodiscard]] const GgufTensorInfo* find_tensor(std::string_view name) const;

 private:
  friend class GgufParser;
  GgufFile() = default;

  MappedFile mapping_;  // Empty for parse().
  std::span<const std::byte> bytes_;
  std::uint32_t version_ = 0;
  std::uint64_t alignment_ = 32;
  std::size_t data_offset_ = 0;
  std::vector<GgufKv> kvs_;
  std::unordered_map<std::string_view, std::size_t> kv_index_;  // Keys view the file bytes.
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string_view, std::size_t> tensor_index_;  // Keys view the file bytes.
};

}  // namespace spillway::engine
