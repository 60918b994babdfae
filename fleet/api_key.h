// API keys: generation, salted hashing, constant-time verification.
//
// Stored form (what fleet files hold): "sha256$<salt: 32 hex>$<SHA-256(salt || key): 64 hex>",
// lower-case hex, salt = 16 random bytes. Plaintext keys are never stored or logged; only the
// presented key, in memory, for the duration of one verification.
//
// Randomness: pass a `SecureRandom` (fleet/secure_random.h) in production; a `SeededRandom`
// makes keys and salts predictable and is for tests and simulations only.
//
// Thread-safety: pure functions (the Random& argument is not shared-safe).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/random.h"

namespace spillway::fleet {

inline constexpr std::string_view kApiKeyPrefix = "sk-spw-";
inline constexpr std::size_t kApiKeyRandomChars = 32;  // base62: ~190 bits of entropy.
// Longest key verify_api_key and TenantDirectory accept; longer ones fail without hashing.
inline constexpr std::size_t kMaxApiKeyBytes = 256;

using Sha256Digest = std::array<std::uint8_t, 32>;

// SHA-256 of `data` (OpenSSL).
[[nodiscard]] Sha256Digest sha256(std::string_view data);

// "sk-spw-" followed by 32 characters drawn uniformly from [0-9A-Za-z].
[[nodiscard]] std::string generate_api_key(Random& random);

// The stored form of `key` with a fresh salt from `random`.
[[nodiscard]] std::string hash_api_key(std::string_view key, Random& random);

// True when `stored` has the stored form above (says nothing about which key it holds).
[[nodiscard]] bool is_hashed_api_key(std::string_view stored);

// True when `key` hashes to `stored`. The digest comparison is constant-time; a malformed
// `stored` or a key longer than kMaxApiKeyBytes is simply false.
[[nodiscard]] bool verify_api_key(std::string_view key, std::string_view stored);

}  // namespace spillway::fleet
