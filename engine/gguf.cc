#include "engine/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

namespace spillway::engine {

// The file format is little-endian and values are read with memcpy.
static_assert(std::endian::native == std::endian::little, "GGUF reader assumes little-endian");

namespace {

constexpr std::uint64_t kDefaultAlignment = 32;

template <typename T>
T load(const std::byte* p) {
  static_assert(std::is_trivially_copyable_v<T>);
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Size of a scalar element; 0 for string, array and unknown types.
std::size_t scalar_size(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool:
      return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
      return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32:
      return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64:
      return 8;
    case GgufValueType::kString:
    case GgufValueType::kArray:
      return 0;
  }
  return 0;
}

bool is_known_type(std::uint32_t raw) {
  return raw <= static_cast<std::uint32_t>(12);
}

bool is_unsigned(GgufValueType t) {
  return t == GgufValueType::kUint8 || t == GgufValueType::kUint16 || t == GgufValueType::kUint32 ||
         t == GgufValueType::kUint64;
}
bool is_signed(GgufValueType t) {
  return t == GgufValueType::kInt8 || t == GgufValueType::kInt16 || t == GgufValueType::kInt32 ||
         t == GgufValueType::kInt64;
}

Error wrong_type(GgufValueType actual, std::string_view wanted) {
  return make_error(ErrorCode::kInvalidArgument, "value has type {}, expected {}",
                    gguf_value_type_name(actual), wanted);
}

}  // namespace

std::string_view gguf_value_type_name(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
      return "uint8";
    case GgufValueType::kInt8:
      return "int8";
    case GgufValueType::kUint16:
      return "uint16";
    case GgufValueType::kInt16:
      return "int16";
    case GgufValueType::kUint32:
      return "uint32";
    case GgufValueType::kInt32:
      return "int32";
    case GgufValueType::kFloat32:
      return "float32";
    case GgufValueType::kBool:
      return "bool";
    case GgufValueType::kString:
      return "string";
    case GgufValueType::kArray:
      return "array";
    case GgufValueType::kUint64:
      return "uint64";
    case GgufValueType::kInt64:
      return "int64";
    case GgufValueType::kFloat64:
      return "float64";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// GgufValue

Result<std::uint64_t> GgufValue::scalar_u64(GgufValueType t, const std::byte* p) const {
  switch (t) {
    case GgufValueType::kUint8:
      return std::uint64_t{load<std::uint8_t>(p)};
    case GgufValueType::kUint16:
      return std::uint64_t{load<std::uint16_t>(p)};
    case GgufValueType::kUint32:
      return std::uint64_t{load<std::uint32_t>(p)};
    case GgufValueType::kUint64:
      return load<std::uint64_t>(p);
    default:
      break;
  }
  if (is_signed(t)) {
    SPW_ASSIGN_OR_RETURN(const std::int64_t v, scalar_i64(t, p));
    if (v < 0) return make_error(ErrorCode::kOutOfRange, "value {} is negative", v);
    return static_cast<std::uint64_t>(v);
  }
  return wrong_type(t, "an integer");
}

Result<std::int64_t> GgufValue::scalar_i64(GgufValueType t, const std::byte* p) const {
  switch (t) {
    case GgufValueType::kInt8:
      return std::int64_t{load<std::int8_t>(p)};
    case GgufValueType::kInt16:
      return std::int64_t{load<std::int16_t>(p)};
    case GgufValueType::kInt32:
      return std::int64_t{load<std::int32_t>(p)};
    case GgufValueType::kInt64:
      return load<std::int64_t>(p);
    default:
      break;
  }
  if (is_unsigned(t)) {
    SPW_ASSIGN_OR_RETURN(const std::uint64_t v, scalar_u64(t, p));
    if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      return make_error(ErrorCode::kOutOfRange, "value {} does not fit in int64", v);
    }
    return static_cast<std::int64_t>(v);
  }
  return wrong_type(t, "an integer");
}

Result<double> GgufValue::scalar_f64(GgufValueType t, const std::byte* p) const {
  if (t == GgufValueType::kFloat32) return static_cast<double>(load<float>(p));
  if (t == GgufValueType::kFloat64) return load<double>(p);
  if (is_unsigned(t)) {
    SPW_ASSIGN_OR_RETURN(const std::uint64_t v, scalar_u64(t, p));
    return static_cast<double>(v);
  }
  if (is_signed(t)) {
    SPW_ASSIGN_OR_RETURN(const std::int64_t v, scalar_i64(t, p));
    return static_cast<double>(v);
  }
  return wrong_type(t, "a number");
}

Result<std::uint64_t> GgufValue::as_u64() const {
  return scalar_u64(type_, data_);
}
Result<std::int64_t> GgufValue::as_i64() const {
  return scalar_i64(type_, data_);
}
Result<double> GgufValue::as_f64() const {
  return scalar_f64(type_, data_);
}

Result<bool> GgufValue::as_bool() const {
  if (type_ != GgufValueType::kBool) return wrong_type(type_, "bool");
  return load<std::uint8_t>(data_) != 0;
}

Result<std::string_view> GgufValue::as_string() const {
  if (type_ != GgufValueType::kString) return wrong_type(type_, "string");
  return std::string_view(reinterpret_cast<const char*>(data_), count_);
}

Result<std::string_view> GgufValue::string_at(std::uint64_t i) const {
  if (!is_array() || array_type_ != GgufValueType::kString) {
    return wrong_type(is_array() ? array_type_ : type_, "an array of strings");
  }
  if (i >= count_) {
    return make_error(ErrorCode::kOutOfRange, "index {} out of range (array size {})", i, count_);
  }
  const std::byte* p = data_ + string_offsets_[i];
  const auto len = load<std::uint64_t>(p);
  return std::string_view(reinterpret_cast<const char*>(p + sizeof(std::uint64_t)), len);
}

Result<std::int64_t> GgufValue::int_at(std::uint64_t i) const {
  if (!is_array() || !(is_signed(array_type_) || is_unsigned(array_type_))) {
    return wrong_type(is_array() ? array_type_ : type_, "an array of integers");
  }
  if (i >= count_) {
    return make_error(ErrorCode::kOutOfRange, "index {} out of range (array size {})", i, count_);
  }
  return scalar_i64(array_type_, data_ + i * scalar_size(array_type_));
}

Result<float> GgufValue::f32_at(std::uint64_t i) const {
  if (!is_array() || scalar_size(array_type_) == 0 || array_type_ == GgufValueType::kBool) {
    return wrong_type(is_array() ? array_type_ : type_, "an array of numbers");
  }
  if (i >= count_) {
    return make_error(ErrorCode::kOutOfRange, "index {} out of range (array size {})", i, count_);
  }
  SPW_ASSIGN_OR_RETURN(const double v,
                       scalar_f64(array_type_, data_ + i * scalar_size(array_type_)));
  return static_cast<float>(v);
}

std::span<const std::byte> GgufValue::array_bytes() const {
  const std::size_t elem = scalar_size(array_type_);
  if (!is_array() || elem == 0) return {};
  return {data_, static_cast<std::size_t>(count_) * elem};
}

std::int64_t GgufTensorInfo::elements() const {
  std::int64_t n = 1;
  for (const std::int64_t d : shape)
    n *= d;
  return n;
}

// ---------------------------------------------------------------------------------------------
// MappedFile

Result<MappedFile> MappedFile::open(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const ErrorCode code = err == ENOENT   ? ErrorCode::kNotFound
                           : err == EACCES ? ErrorCode::kPermissionDenied
                                           : ErrorCode::kInternal;
    return make_error(code, "{}: cannot open: {}", path, std::strerror(err));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return make_error(ErrorCode::kInternal, "{}: cannot stat: {}", path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return make_error(ErrorCode::kInvalidArgument, "{}: not a regular file", path);
  }
  MappedFile file;
  file.size_ = static_cast<std::size_t>(st.st_size);
  if (file.size_ > 0) {
    void* addr = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
      const int err = errno;
      ::close(fd);
      return make_error(ErrorCode::kInternal, "{}: mmap failed: {}", path, std::strerror(err));
    }
    file.data_ = static_cast<const std::byte*>(addr);
    file.mapped_ = true;
  }
  ::close(fd);  // The mapping keeps the file contents reachable.
  return file;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, false)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (mapped_) ::munmap(const_cast<std::byte*>(data_), size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, false);
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (mapped_) ::munmap(const_cast<std::byte*>(data_), size_);
}

// ---------------------------------------------------------------------------------------------
// Parser

// Walks the header with a cursor; every read is bounds-checked against the file size.
class GgufParser {
 public:
  GgufParser(std::span<const std::byte> bytes, const GgufLimits& limits)
      : bytes_(bytes), limits_(limits) {}

  Result<GgufFile> run();

 private:
  std::uint64_t remaining() const { return bytes_.size() - pos_; }

  Error truncated(std::string_view what, std::uint64_t need) const {
    return make_error(ErrorCode::kDataLoss,
                      "truncated file: {} needs {} bytes at offset {}, file has {} bytes", what,
                      need, pos_, bytes_.size());
  }

  template <typename T>
  Result<T> read(std::string_view what) {
    if (remaining() < sizeof(T)) return truncated(what, sizeof(T));
    T v = load<T>(bytes_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }

  // A GGUF string (u64 length + bytes) of at most `max_bytes`.
  Result<std::string_view> read_string(std::string_view what, std::uint64_t max_bytes) {
    SPW_ASSIGN_OR_RETURN(const auto len, read<std::uint64_t>(what));
    if (len > remaining()) {
      return make_error(ErrorCode::kDataLoss,
                        "{}: string length {} at offset {} extends past end of file ({} bytes)",
                        what, len, pos_ - sizeof(std::uint64_t), bytes_.size());
    }
    if (len > max_bytes) {
      return make_error(ErrorCode::kOutOfRange, "{}: string length {} exceeds the limit of {}",
                        what, len, max_bytes);
    }
    std::string_view s(reinterpret_cast<const char*>(bytes_.data() + pos_), len);
    pos_ += len;
    return s;
  }

  Status read_header(GgufFile& file, std::uint64_t& n_tensors, std::uint64_t& n_kv);
  Status read_kv(GgufFile& file);
  Status read_value(std::string_view key, GgufValue& value);
  Status read_tensor_info(GgufFile& file);
  Status resolve_alignment(GgufFile& file);
  Status place_tensors(GgufFile& file);

  std::span<const std::byte> bytes_;
  const GgufLimits& limits_;
  std::size_t pos_ = 0;
};

Result<GgufFile> GgufParser::run() {
  GgufFile file;
  file.bytes_ = bytes_;
  std::uint64_t n_tensors = 0;
  std::uint64_t n_kv = 0;
  SPW_TRY(read_header(file, n_tensors, n_kv));
  file.kvs_.reserve(n_kv);
  file.kv_index_.reserve(n_kv);
  for (std::uint64_t i = 0; i < n_kv; ++i) {
    SPW_TRY(read_kv(file));
  }
  SPW_TRY(resolve_alignment(file));
  file.tensors_.reserve(n_tensors);
  file.tensor_index_.reserve(n_tensors);
  for (std::uint64_t i = 0; i < n_tensors; ++i) {
    SPW_TRY(read_tensor_info(file));
  }
  SPW_TRY(place_tensors(file));
  return file;
}

Status GgufParser::read_header(GgufFile& file, std::uint64_t& n_tensors, std::uint64_t& n_kv) {
  if (bytes_.size() < 4) {
    return make_error(ErrorCode::kDataLoss, "not a GGUF file: only {} bytes", bytes_.size());
  }
  const auto* magic = reinterpret_cast<const char*>(bytes_.data());
  if (std::memcmp(magic, "GGUF", 4) != 0) {
    return make_error(ErrorCode::kDataLoss,
                      "not a GGUF file: magic is {:02x} {:02x} {:02x} {:02x}, expected 'GGUF'",
                      static_cast<unsigned char>(magic[0]), static_cast<unsigned char>(magic[1]),
                      static_cast<unsigned char>(magic[2]), static_cast<unsigned char>(magic[3]));
  }
  pos_ = 4;
  SPW_ASSIGN_OR_RETURN(const auto version, read<std::uint32_t>("version"));
  if (version == 1) {
    return make_error(ErrorCode::kUnimplemented,
                      "GGUF version 1 is not supported (only versions 2 and 3); re-convert the "
                      "model with a current llama.cpp");
  }
  if (version != 2 && version != 3) {
    // A big-endian GGUF v3 stores its version byte-swapped.
    const std::uint32_t swapped = __builtin_bswap32(version);
    if (swapped == 2 || swapped == 3) {
      return make_error(ErrorCode::kUnimplemented, "big-endian GGUF files are not supported");
    }
    return make_error(ErrorCode::kUnimplemented,
                      "unsupported GGUF version {} (only versions 2 and 3)", version);
  }
  file.version_ = version;
  SPW_ASSIGN_OR_RETURN(n_tensors, read<std::uint64_t>("tensor count"));
  SPW_ASSIGN_OR_RETURN(n_kv, read<std::uint64_t>("metadata count"));

  // Cheapest possible encodings: a KV pair is a key length, a 1-byte key, a type and a 1-byte
  // value; a tensor info is a name length, a 1-byte name, n_dims, one dimension, a type and
  // an offset. Counts beyond what the remaining bytes could hold are corrupt, and rejecting
  // them here keeps every reserve() below proportional to the file size.
  constexpr std::uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
  constexpr std::uint64_t kMinTensorBytes = 8 + 1 + 4 + 8 + 4 + 8;
  if (n_kv > remaining() / kMinKvBytes) {
    return make_error(ErrorCode::kDataLoss,
                      "header declares {} metadata pairs but only {} bytes follow", n_kv,
                      remaining());
  }
  if (n_tensors > (remaining() - n_kv * kMinKvBytes) / kMinTensorBytes) {
    return make_error(ErrorCode::kDataLoss, "header declares {} tensors but only {} bytes follow",
                      n_tensors, remaining());
  }
  if (n_kv > limits_.max_kv_pairs) {
    return make_error(ErrorCode::kOutOfRange, "header declares {} metadata pairs (limit {})", n_kv,
                      limits_.max_kv_pairs);
  }
  if (n_tensors > limits_.max_tensors) {
    return make_error(ErrorCode::kOutOfRange, "header declares {} tensors (limit {})", n_tensors,
                      limits_.max_tensors);
  }
  return Status();
}

Status GgufParser::read_kv(GgufFile& file) {
  SPW_ASSIGN_OR_RETURN(const std::string_view key,
                       read_string("metadata key", limits_.max_key_bytes));
  if (key.empty()) {
    return make_error(ErrorCode::kDataLoss, "empty metadata key at offset {}",
                      pos_ - sizeof(std::uint64_t));
  }
  if (file.kv_index_.contains(key)) {
    return make_error(ErrorCode::kDataLoss, "duplicate metadata key '{}'", key);
  }
  GgufValue value;
  SPW_TRY(read_value(key, value));
  file.kv_index_.emplace(key, file.kvs_.size());
  file.kvs_.push_back(GgufKv{key, std::move(value)});
  return Status();
}

Status GgufParser::read_value(std::string_view key, GgufValue& value) {
  SPW_ASSIGN_OR_RETURN(const auto raw_type, read<std::uint32_t>("metadata type"));
  if (!is_known_type(raw_type)) {
    return make_error(ErrorCode::kDataLoss, "metadata '{}': unknown value type {}", key, raw_type);
  }
  value.type_ = static_cast<GgufValueType>(raw_type);
  if (value.type_ == GgufValueType::kString) {
    SPW_ASSIGN_OR_RETURN(const std::string_view s, read_string(key, limits_.max_string_bytes));
    value.data_ = reinterpret_cast<const std::byte*>(s.data());
    value.count_ = s.size();
    return Status();
  }
  if (value.type_ != GgufValueType::kArray) {
    const std::size_t size = scalar_size(value.type_);
    if (remaining() < size) return truncated(key, size);
    value.data_ = bytes_.data() + pos_;
    value.count_ = 1;
    pos_ += size;
    return Status();
  }

  SPW_ASSIGN_OR_RETURN(const auto raw_elem, read<std::uint32_t>("array element type"));
  if (!is_known_type(raw_elem)) {
    return make_error(ErrorCode::kDataLoss, "metadata '{}': unknown array element type {}", key,
                      raw_elem);
  }
  value.array_type_ = static_cast<GgufValueType>(raw_elem);
  if (value.array_type_ == GgufValueType::kArray) {
    return make_error(ErrorCode::kUnimplemented,
                      "metadata '{}': arrays of arrays are not supported", key);
  }
  SPW_ASSIGN_OR_RETURN(const auto count, read<std::uint64_t>("array length"));
  // Every element takes at least 8 bytes (string length) or its scalar size.
  const std::uint64_t min_elem = value.array_type_ == GgufValueType::kString
                                     ? sizeof(std::uint64_t)
                                     : scalar_size(value.array_type_);
  if (count > remaining() / min_elem) {
    return make_error(ErrorCode::kDataLoss,
                      "metadata '{}': array of {} {} at offset {} extends past end of file "
                      "({} bytes)",
                      key, count, gguf_value_type_name(value.array_type_), pos_, bytes_.size());
  }
  if (count > limits_.max_array_elements) {
    return make_error(ErrorCode::kOutOfRange,
                      "metadata '{}': array length {} exceeds the limit of {}", key, count,
                      limits_.max_array_elements);
  }
  value.data_ = bytes_.data() + pos_;
  value.count_ = count;
  if (value.array_type_ != GgufValueType::kString) {
    pos_ += count * min_elem;
    return Status();
  }
  const std::size_t start = pos_;
  value.string_offsets_.reserve(count);
  for (std::uint64_t i = 0; i < count; ++i) {
    value.string_offsets_.push_back(pos_ - start);
    SPW_ASSIGN_OR_RETURN(const std::string_view s, read_string(key, limits_.max_string_bytes));
    (void)s;
  }
  return Status();
}

Status GgufParser::resolve_alignment(GgufFile& file) {
  const GgufValue* v = file.find("general.alignment");
  if (v == nullptr) {
    file.alignment_ = kDefaultAlignment;
    return Status();
  }
  Result<std::uint64_t> alignment = v->as_u64();
  if (!alignment.ok()) {
    return make_error(ErrorCode::kDataLoss, "general.alignment: {}", alignment.error().message());
  }
  if (*alignment == 0 || !std::has_single_bit(*alignment)) {
    return make_error(ErrorCode::kDataLoss, "general.alignment {} is not a power of two",
                      *alignment);
  }
  if (*alignment > limits_.max_alignment) {
    return make_error(ErrorCode::kOutOfRange, "general.alignment {} exceeds the limit of {}",
                      *alignment, limits_.max_alignment);
  }
  file.alignment_ = *alignment;
  return Status();
}

Status GgufParser::read_tensor_info(GgufFile& file) {
  SPW_ASSIGN_OR_RETURN(const std::string_view name,
                       read_string("tensor name", limits_.max_tensor_name_bytes));
  if (name.empty()) {
    return make_error(ErrorCode::kDataLoss, "empty tensor name at offset {}",
                      pos_ - sizeof(std::uint64_t));
  }
  if (file.tensor_index_.contains(name)) {
    return make_error(ErrorCode::kDataLoss, "duplicate tensor name '{}'", name);
  }
  GgufTensorInfo info;
  info.name = std::string(name);
  SPW_ASSIGN_OR_RETURN(const auto n_dims, read<std::uint32_t>("tensor dimension count"));
  if (n_dims == 0 || n_dims > limits_.max_dims) {
    return make_error(ErrorCode::kDataLoss, "tensor '{}': {} dimensions (expected 1 to {})", name,
                      n_dims, limits_.max_dims);
  }
  info.shape.reserve(n_dims);
  std::uint64_t elements = 1;
  constexpr auto kMaxElements =
      static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  for (std::uint32_t d = 0; d < n_dims; ++d) {
    SPW_ASSIGN_OR_RETURN(const auto ne, read<std::uint64_t>("tensor dimension"));
    if (ne == 0) {
      return make_error(ErrorCode::kDataLoss, "tensor '{}': dimension {} is zero", name, d);
    }
    if (ne > kMaxElements / elements) {
      return make_error(ErrorCode::kDataLoss, "tensor '{}': element count overflows", name);
    }
    elements *= ne;
    info.shape.push_back(static_cast<std::int64_t>(ne));
  }
  SPW_ASSIGN_OR_RETURN(const auto raw_type, read<std::uint32_t>("tensor type"));
  const std::optional<GgmlTypeInfo> type_info = ggml_type_info(raw_type);
  if (!type_info) {
    return make_error(ErrorCode::kUnimplemented, "tensor '{}': unknown ggml type {}", name,
                      raw_type);
  }
  info.type = static_cast<GgmlType>(raw_type);
  const std::optional<std::size_t> row_bytes = ggml_row_bytes(info.type, info.shape[0]);
  if (!row_bytes && info.shape[0] % type_info->block_elements == 0) {
    return make_error(ErrorCode::kDataLoss, "tensor '{}': byte size overflows", name);
  }
  if (!row_bytes) {
    return make_error(ErrorCode::kDataLoss,
                      "tensor '{}': row of {} elements is not a multiple of the {} block size {}",
                      name, info.shape[0], type_info->name, type_info->block_elements);
  }
  const std::uint64_t rows = elements / static_cast<std::uint64_t>(info.shape[0]);
  if (*row_bytes != 0 && rows > std::numeric_limits<std::size_t>::max() / *row_bytes) {
    return make_error(ErrorCode::kDataLoss, "tensor '{}': byte size overflows", name);
  }
  info.nbytes = static_cast<std::size_t>(rows * *row_bytes);
  SPW_ASSIGN_OR_RETURN(info.offset, read<std::uint64_t>("tensor offset"));
  if (info.offset % file.alignment_ != 0) {
    return make_error(ErrorCode::kDataLoss,
                      "tensor '{}': offset {} is not a multiple of the alignment {}", name,
                      info.offset, file.alignment_);
  }
  file.tensor_index_.emplace(name, file.tensors_.size());
  file.tensors_.push_back(std::move(info));
  return Status();
}

Status GgufParser::place_tensors(GgufFile& file) {
  // The data section starts at the next multiple of the alignment. Files without tensors may
  // end before that point (nothing follows the header), so clamp to the file size.
  const std::uint64_t a = file.alignment_;
  const std::uint64_t padded = pos_ + (a - pos_ % a) % a;
  file.data_offset_ = static_cast<std::size_t>(std::min<std::uint64_t>(padded, bytes_.size()));
  const std::uint64_t data_size = bytes_.size() - file.data_offset_;
  for (GgufTensorInfo& t : file.tensors_) {
    if (padded > bytes_.size() || t.offset > data_size || t.nbytes > data_size - t.offset) {
      // For the message only; saturates instead of wrapping on absurd offsets.
      constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();
      const std::uint64_t begin = t.offset > kMax - padded ? kMax : padded + t.offset;
      const std::uint64_t end = t.nbytes > kMax - begin ? kMax : begin + t.nbytes;
      return make_error(ErrorCode::kDataLoss,
                        "tensor '{}': data [{}, {}) extends past end of file ({} bytes)", t.name,
                        begin, end, bytes_.size());
    }
    t.data = bytes_.data() + file.data_offset_ + t.offset;
  }
  return Status();
}

// ---------------------------------------------------------------------------------------------
// GgufFile

Result<GgufFile> GgufFile::parse(std::span<const std::byte> bytes, const GgufLimits& limits) {
  return GgufParser(bytes, limits).run();
}

Result<GgufFile> GgufFile::open(const std::string& path, const GgufLimits& limits) {
  SPW_ASSIGN_OR_RETURN(MappedFile mapping, MappedFile::open(path));
  Result<GgufFile> file = parse(mapping.bytes(), limits);
  if (!file.ok()) return file.error().with_context(path);
  file->mapping_ = std::move(mapping);  // The views stay valid: the mapping does not move.
  return file;
}

const GgufValue* GgufFile::find(std::string_view key) const {
  const auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kvs_[it->second].value;
}

namespace {

template <typename T>
Result<T> with_key(std::string_view key, Result<T> r) {
  if (r.ok()) return r;
  return r.error().with_context(fmt::format("metadata '{}'", key));
}

}  // namespace

Result<std::string_view> GgufFile::get_string(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return make_error(ErrorCode::kNotFound, "metadata key '{}' not found", key);
  return with_key(key, v->as_string());
}

Result<std::uint64_t> GgufFile::get_u64(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return make_error(ErrorCode::kNotFound, "metadata key '{}' not found", key);
  return with_key(key, v->as_u64());
}

Result<std::int64_t> GgufFile::get_i64(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return make_error(ErrorCode::kNotFound, "metadata key '{}' not found", key);
  return with_key(key, v->as_i64());
}

Result<float> GgufFile::get_f32(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return make_error(ErrorCode::kNotFound, "metadata key '{}' not found", key);
  SPW_ASSIGN_OR_RETURN(const double d, with_key(key, v->as_f64()));
  return static_cast<float>(d);
}

Result<bool> GgufFile::get_bool(std::string_view key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return make_error(ErrorCode::kNotFound, "metadata key '{}' not found", key);
  return with_key(key, v->as_bool());
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace spillway::engine
