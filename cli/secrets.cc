#include "cli/secrets.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/log.h"

#include "control/replica_launcher.h"
#include "fleet/api_key.h"

namespace spillway::cli {
namespace {

// The launcher sets the variables this CLI reads in `spillway serve`.
static_assert(control::kReplicaApiKeysEnv == kApiKeysEnv);
static_assert(control::kReplicaTrustedKeysEnv == kTrustedKeysEnv);

constexpr std::size_t kMaxKeyBytes = 256;

bool valid_key(std::string_view key) {
  if (key.empty() || key.size() > kMaxKeyBytes) return false;
  for (const char c : key) {
    if (c <= ' ' || c > '~' || c == ',') return false;
  }
  return true;
}

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r\n");
  return s.substr(first, last - first + 1);
}

}  // namespace

Result<std::vector<std::string>> read_key_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    const int err = errno;
    return make_error(err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kUnavailable, "{}: {}",
                      path, std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) return make_error(ErrorCode::kInvalidArgument, "{}: not a file", path);
  if (static_cast<std::size_t>(st.st_size) > kMaxKeyFileBytes) {
    return make_error(ErrorCode::kInvalidArgument, "{}: larger than {} bytes", path,
                      kMaxKeyFileBytes);
  }
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    log_warn("key file is accessible to other users; chmod 600 it",
             {kv("path", path), kv("mode", fmt::format("{:04o}", st.st_mode & 07777))});
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::kUnavailable, "{}: cannot open", path);
  std::string text(kMaxKeyFileBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxKeyFileBytes) {
    return make_error(ErrorCode::kInvalidArgument, "{}: larger than {} bytes", path,
                      kMaxKeyFileBytes);
  }
  std::vector<std::string> keys;
  std::size_t line_no = 0;
  std::string_view rest = text;
  while (!rest.empty()) {
    const std::size_t nl = rest.find('\n');
    const std::string_view line = trim(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    ++line_no;
    if (line.empty() || line.front() == '#') continue;
    if (!valid_key(line)) {
      return make_error(ErrorCode::kInvalidArgument,
                        "{}:{}: not a valid key (1-256 printable ASCII characters, no spaces or "
                        "commas)",
                        path, line_no);
    }
    if (keys.size() == kMaxKeysPerFile) {
      return make_error(ErrorCode::kInvalidArgument, "{}: more than {} keys", path,
                        kMaxKeysPerFile);
    }
    keys.emplace_back(line);
  }
  return keys;
}

Result<std::string> read_single_key_file(const std::string& path) {
  SPW_ASSIGN_OR_RETURN(std::vector<std::string> keys, read_key_file(path));
  if (keys.size() != 1) {
    return make_error(ErrorCode::kInvalidArgument, "{}: holds {} keys, expected exactly one", path,
                      keys.size());
  }
  return std::move(keys.front());
}

Result<std::string> load_or_create_key_file(const std::string& path, Random& random) {
  auto existing = read_single_key_file(path);
  if (existing.ok() || existing.error().code() != ErrorCode::kNotFound) return existing;
  // Write a temporary file of our own, then link it into place: readers never see a partial
  // key, and a concurrent creator's key wins (link fails with EEXIST).
  const std::string key = fleet::generate_api_key(random);
  const std::string tmp = fmt::format("{}.tmp-{}", path, ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) {
    return make_error(ErrorCode::kUnavailable, "{}: cannot create: {}", tmp, std::strerror(errno));
  }
  const std::string line = key + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                       ::fsync(fd) == 0;
  const int write_errno = errno;
  ::close(fd);
  int link_errno = 0;
  if (written && ::link(tmp.c_str(), path.c_str()) != 0) link_errno = errno;
  ::unlink(tmp.c_str());
  if (!written) {
    return make_error(ErrorCode::kUnavailable, "{}: cannot write: {}", tmp,
                      std::strerror(write_errno));
  }
  if (link_errno == EEXIST) return read_single_key_file(path);
  if (link_errno != 0) {
    return make_error(ErrorCode::kUnavailable, "{}: cannot create: {}", path,
                      std::strerror(link_errno));
  }
  log_info("wrote a new key file (mode 0600)", {kv("path", path)});
  return key;
}

Result<std::vector<std::string>> keys_from_env(std::string_view name) {
  const char* value = std::getenv(std::string(name).c_str());
  std::vector<std::string> keys;
  if (value == nullptr) return keys;
  std::string_view rest = value;
  std::size_t index = 0;
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    const std::string_view key = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (key.empty()) continue;
    if (!valid_key(key) || keys.size() == kMaxKeysPerFile) {
      return make_error(ErrorCode::kInvalidArgument,
                        "{}: entry {} is not a valid key (1-256 printable ASCII characters, no "
                        "spaces; at most {} keys)",
                        name, index, kMaxKeysPerFile);
    }
    keys.emplace_back(key);
    ++index;
  }
  return keys;
}

Result<std::string> single_key_from(const std::string& path, std::string_view env) {
  if (!path.empty()) return read_single_key_file(path);
  SPW_ASSIGN_OR_RETURN(std::vector<std::string> keys, keys_from_env(env));
  if (keys.size() > 1) {
    return make_error(ErrorCode::kInvalidArgument, "{}: holds {} keys, expected one", env,
                      keys.size());
  }
  return keys.empty() ? std::string() : std::move(keys.front());
}

}  // namespace spillway::cli
