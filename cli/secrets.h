// Secrets for the CLI, kept off the command line (/proc/PID/cmdline is world-readable): key
// files and environment variables.
//
// A key is 1-256 printable ASCII characters without spaces or commas. A key file holds one key
// per line; blank lines and lines starting with '#' are skipped, surrounding whitespace
// (including a CR) is trimmed. Files larger than kMaxKeyFileBytes or with more than
// kMaxKeysPerFile keys are refused. A file other users may read is accepted with a warning
// (secret volumes are often mounted 0644). Errors name the file and line, never the key.
//
// Thread-safety: plain functions; they read process-wide state (the environment).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "core/random.h"
#include "core/status.h"

namespace spillway::cli {

inline constexpr std::string_view kApiKeysEnv = "SPILLWAY_API_KEYS";          // serve
inline constexpr std::string_view kTrustedKeysEnv = "SPILLWAY_TRUSTED_KEYS";  // serve
inline constexpr std::string_view kInternalKeyEnv = "SPILLWAY_INTERNAL_KEY";  // control, gateway
inline constexpr std::string_view kAdminKeyEnv = "SPILLWAY_ADMIN_KEY";  // up, control, gateway
inline constexpr std::string_view kUpstreamKeyEnv = "SPILLWAY_UPSTREAM_KEY";  // gateway --upstream

inline constexpr std::size_t kMaxKeyFileBytes = 1u << 20;
inline constexpr std::size_t kMaxKeysPerFile = 4096;

// The keys in `path`. kNotFound (missing), kUnavailable (unreadable), kInvalidArgument (a bad
// line, too large, too many keys).
[[nodiscard]] Result<std::vector<std::string>> read_key_file(const std::string& path);

// The one key in `path`; kInvalidArgument when it holds none or several.
[[nodiscard]] Result<std::string> read_single_key_file(const std::string& path);

// The key in `path`; when the file does not exist, a fresh key (fleet::generate_api_key) is
// written to it atomically with mode 0600 and returned.
[[nodiscard]] Result<std::string> load_or_create_key_file(const std::string& path, Random& random);

// The comma-separated keys of environment variable `name` (empty when unset);
// kInvalidArgument naming the variable for a malformed key.
[[nodiscard]] Result<std::vector<std::string>> keys_from_env(std::string_view name);

// The single key of --FLAG FILE when `path` is set, else of environment variable `env`, else
// "". kInvalidArgument when the variable holds several keys.
[[nodiscard]] Result<std::string> single_key_from(const std::string& path, std::string_view env);

}  // namespace spillway::cli
