#include "engine/gguf_writer.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>
#include <unordered_set>
#include <utility>

namespace spillway::engine {
namespace {

constexpr std::uint32_t kVersion = 3;
constexpr std::uint64_t kAlignment = 32;
constexpr std::size_t kMaxTensorNameBytes = 64;  // What GgufLimits accepts by default.
// Target size of one fill() call: large enough for sequential I/O, small enough that the
// staging buffer is negligible next to the model.
constexpr std::size_t kChunkBytes = 4u << 20;

template <typename T>
void append(std::vector<std::byte>& out, T v) {
  static_assert(std::is_trivially_copyable_v<T>);
  const auto* p = reinterpret_cast<const std::byte*>(&v);
  out.insert(out.end(), p, p + sizeof(T));
}

void append_string(std::vector<std::byte>& out, std::string_view s) {
  append<std::uint64_t>(out, s.size());
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  out.insert(out.end(), p, p + s.size());
}

std::uint64_t align_up(std::uint64_t n) {
  return (n + kAlignment - 1) / kAlignment * kAlignment;
}

// Byte size of a tensor, or an error naming what is wrong with its shape.
Result<std::size_t> tensor_bytes(std::string_view name, GgmlType type,
                                 const std::vector<std::int64_t>& shape) {
  if (shape.empty() || shape.size() > 4) {
    return make_error(ErrorCode::kInvalidArgument, "tensor '{}': {} dimensions (expected 1 to 4)",
                      name, shape.size());
  }
  std::int64_t rows = 1;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] < 1) {
      return make_error(ErrorCode::kInvalidArgument, "tensor '{}': dimension {} is {}", name, d,
                        shape[d]);
    }
    if (d > 0) {
      if (shape[d] > std::numeric_limits<std::int64_t>::max() / rows) {
        return make_error(ErrorCode::kInvalidArgument, "tensor '{}': size overflows", name);
      }
      rows *= shape[d];
    }
  }
  const std::optional<std::size_t> row = ggml_row_bytes(type, shape[0]);
  if (!row || static_cast<std::uint64_t>(rows) > std::numeric_limits<std::size_t>::max() / *row) {
    return make_error(ErrorCode::kInvalidArgument,
                      "tensor '{}': row of {} elements does not fit the {} block size {}", name,
                      shape[0], ggml_type_info(type).name, ggml_type_info(type).block_elements);
  }
  return static_cast<std::size_t>(rows) * *row;
}

}  // namespace

void GgufWriter::add_kv(std::string_view key, GgufValueType type, std::vector<std::byte> bytes) {
  kvs_.push_back(Kv{std::string(key), type, std::move(bytes)});
}

void GgufWriter::add_u32(std::string_view key, std::uint32_t value) {
  std::vector<std::byte> b;
  append(b, value);
  add_kv(key, GgufValueType::kUint32, std::move(b));
}

void GgufWriter::add_i32(std::string_view key, std::int32_t value) {
  std::vector<std::byte> b;
  append(b, value);
  add_kv(key, GgufValueType::kInt32, std::move(b));
}

void GgufWriter::add_u64(std::string_view key, std::uint64_t value) {
  std::vector<std::byte> b;
  append(b, value);
  add_kv(key, GgufValueType::kUint64, std::move(b));
}

void GgufWriter::add_f32(std::string_view key, float value) {
  std::vector<std::byte> b;
  append(b, value);
  add_kv(key, GgufValueType::kFloat32, std::move(b));
}

void GgufWriter::add_bool(std::string_view key, bool value) {
  std::vector<std::byte> b;
  append<std::uint8_t>(b, value ? 1 : 0);
  add_kv(key, GgufValueType::kBool, std::move(b));
}

void GgufWriter::add_string(std::string_view key, std::string_view value) {
  std::vector<std::byte> b;
  append_string(b, value);
  add_kv(key, GgufValueType::kString, std::move(b));
}

void GgufWriter::add_string_array(std::string_view key, std::span<const std::string> values) {
  std::vector<std::byte> b;
  append(b, GgufValueType::kString);
  append<std::uint64_t>(b, values.size());
  for (const std::string& s : values)
    append_string(b, s);
  add_kv(key, GgufValueType::kArray, std::move(b));
}

void GgufWriter::add_f32_array(std::string_view key, std::span<const float> values) {
  std::vector<std::byte> b;
  append(b, GgufValueType::kFloat32);
  append<std::uint64_t>(b, values.size());
  for (const float v : values)
    append(b, v);
  add_kv(key, GgufValueType::kArray, std::move(b));
}

void GgufWriter::add_i32_array(std::string_view key, std::span<const std::int32_t> values) {
  std::vector<std::byte> b;
  append(b, GgufValueType::kInt32);
  append<std::uint64_t>(b, values.size());
  for (const std::int32_t v : values)
    append(b, v);
  add_kv(key, GgufValueType::kArray, std::move(b));
}

void GgufWriter::add_tensor(std::string_view name, GgmlType type, std::vector<std::int64_t> shape,
                            std::span<const std::byte> data) {
  tensors_.push_back(Tensor{std::string(name), type, std::move(shape), data, {}});
}

void GgufWriter::add_tensor(std::string_view name, GgmlType type, std::vector<std::int64_t> shape,
                            TensorFill fill) {
  tensors_.push_back(Tensor{std::string(name), type, std::move(shape), {}, std::move(fill)});
}

Status GgufWriter::emit(const std::function<bool(std::span<const std::byte>)>& sink) const {
  // Validate everything before the first byte goes out.
  std::unordered_set<std::string_view> seen;
  for (const Kv& kv : kvs_) {
    if (kv.key.empty()) return make_error(ErrorCode::kInvalidArgument, "empty metadata key");
    if (!seen.insert(kv.key).second) {
      return make_error(ErrorCode::kInvalidArgument, "duplicate metadata key '{}'", kv.key);
    }
  }
  seen.clear();
  std::vector<std::size_t> sizes;
  std::vector<std::uint64_t> offsets;
  std::uint64_t data_end = 0;
  for (const Tensor& t : tensors_) {
    if (t.name.empty() || t.name.size() > kMaxTensorNameBytes) {
      return make_error(ErrorCode::kInvalidArgument, "tensor name '{}' must have 1 to {} bytes",
                        t.name, kMaxTensorNameBytes);
    }
    if (!seen.insert(t.name).second) {
      return make_error(ErrorCode::kInvalidArgument, "duplicate tensor name '{}'", t.name);
    }
    SPW_ASSIGN_OR_RETURN(const std::size_t nbytes, tensor_bytes(t.name, t.type, t.shape));
    if (!t.fill && t.data.size() != nbytes) {
      return make_error(ErrorCode::kInvalidArgument, "tensor '{}': {} bytes given, shape needs {}",
                        t.name, t.data.size(), nbytes);
    }
    sizes.push_back(nbytes);
    offsets.push_back(data_end);
    data_end = align_up(data_end + nbytes);
  }

  std::vector<std::byte> header;
  header.insert(header.end(), {std::byte{'G'}, std::byte{'G'}, std::byte{'U'}, std::byte{'F'}});
  append(header, kVersion);
  append<std::uint64_t>(header, tensors_.size());
  append<std::uint64_t>(header, kvs_.size());
  for (const Kv& kv : kvs_) {
    append_string(header, kv.key);
    append(header, kv.type);
    header.insert(header.end(), kv.bytes.begin(), kv.bytes.end());
  }
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    append_string(header, t.name);
    append<std::uint32_t>(header, static_cast<std::uint32_t>(t.shape.size()));
    for (const std::int64_t d : t.shape)
      append<std::uint64_t>(header, static_cast<std::uint64_t>(d));
    append(header, t.type);
    append<std::uint64_t>(header, offsets[i]);
  }
  header.resize(align_up(header.size()), std::byte{0});
  const auto io_error = [] {
    return make_error(ErrorCode::kInternal, "write failed: {}", std::strerror(errno));
  };
  if (!sink(header)) return io_error();

  const std::byte zeros[kAlignment] = {};
  std::vector<std::byte> chunk;
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    if (!t.fill) {
      if (!sink(t.data)) return io_error();
    } else {
      const std::size_t row_bytes = *ggml_row_bytes(t.type, t.shape[0]);
      const std::size_t rows_per_chunk = std::max<std::size_t>(1, kChunkBytes / row_bytes);
      const std::size_t total_rows = sizes[i] / row_bytes;
      for (std::size_t row = 0; row < total_rows; row += rows_per_chunk) {
        const std::size_t n = std::min(rows_per_chunk, total_rows - row);
        chunk.assign(n * row_bytes, std::byte{0});
        Status filled = t.fill(static_cast<std::int64_t>(row), chunk);
        if (!filled.ok()) return filled.error().with_context(fmt::format("tensor '{}'", t.name));
        if (!sink(chunk)) return io_error();
      }
    }
    const std::size_t pad = align_up(sizes[i]) - sizes[i];
    if (pad > 0 && !sink(std::span<const std::byte>(zeros, pad))) return io_error();
  }
  return Status();
}

Result<std::vector<std::byte>> GgufWriter::serialize() const {
  std::vector<std::byte> out;
  SPW_TRY(emit([&out](std::span<const std::byte> b) {
    out.insert(out.end(), b.begin(), b.end());
    return true;
  }));
  return out;
}

Status GgufWriter::write(const std::string& path) const {
  // A per-process temporary name: concurrent writers of the same path (parallel tests, two
  // `mkmodel` runs) each write their own file, and the last rename wins atomically.
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    return make_error(ErrorCode::kInternal, "{}: cannot create: {}", tmp, std::strerror(errno));
  }
  Status written = emit([f](std::span<const std::byte> b) {
    return b.empty() || std::fwrite(b.data(), 1, b.size(), f) == b.size();
  });
  if (std::fclose(f) != 0 && written.ok()) {
    written = make_error(ErrorCode::kInternal, "close failed: {}", std::strerror(errno));
  }
  if (!written.ok()) {
    std::remove(tmp.c_str());
    return written.error().with_context(path);
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    std::remove(tmp.c_str());
    return make_error(ErrorCode::kInternal, "{}: cannot rename from {}: {}", path, tmp,
                      std::strerror(err));
  }
  return Status();
}

}  // namespace spillway::engine
