#include "fleet/api_key.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <optional>
#include <span>

namespace spillway::fleet {

namespace {

constexpr std::string_view kScheme = "sha256$";
constexpr std::size_t kSaltBytes = 16;
constexpr std::string_view kHexDigits = "0123456789abcdef";
constexpr std::string_view kBase62 =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

std::string to_hex(const std::uint8_t* data, std::size_t size) {
  std::string out;
  out.reserve(size * 2);
  for (std::size_t i = 0; i < size; ++i) {
    out.push_back(kHexDigits[data[i] >> 4]);
    out.push_back(kHexDigits[data[i] & 0xf]);
  }
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Decodes lower-case hex of exactly out.size() * 2 characters.
template <std::size_t N>
bool from_hex(std::string_view hex, std::array<std::uint8_t, N>& out) {
  if (hex.size() != N * 2) return false;
  for (std::size_t i = 0; i < N; ++i) {
    const int hi = hex_value(hex[2 * i]);
    const int lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
  }
  return true;
}

struct StoredKey {
  std::array<std::uint8_t, kSaltBytes> salt;
  Sha256Digest digest;
};

std::optional<StoredKey> parse_stored(std::string_view stored) {
  if (!stored.starts_with(kScheme)) return std::nullopt;
  stored.remove_prefix(kScheme.size());
  const std::size_t dollar = stored.find('$');
  if (dollar == std::string_view::npos) return std::nullopt;
  StoredKey parsed;
  if (!from_hex(stored.substr(0, dollar), parsed.salt)) return std::nullopt;
  if (!from_hex(stored.substr(dollar + 1), parsed.digest)) return std::nullopt;
  return parsed;
}

Sha256Digest salted_digest(std::span<const std::uint8_t> salt, std::string_view key) {
  std::string input(reinterpret_cast<const char*>(salt.data()), salt.size());
  input.append(key);
  Sha256Digest digest = sha256(input);
  OPENSSL_cleanse(input.data(), input.size());
  return digest;
}

}  // namespace

Sha256Digest sha256(std::string_view data) {
  Sha256Digest digest{};
  unsigned int size = 0;
  // EVP_Digest with SHA-256 cannot fail on a valid pointer and length; a failure would mean a
  // broken OpenSSL installation, and the zero digest then matches no stored key.
  if (EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(), nullptr) != 1) {
    digest.fill(0);
  }
  return digest;
}

std::string generate_api_key(Random& random) {
  std::string key(kApiKeyPrefix);
  for (std::size_t i = 0; i < kApiKeyRandomChars; ++i) {
    key.push_back(kBase62[random.below(kBase62.size())]);
  }
  return key;
}

std::string hash_api_key(std::string_view key, Random& random) {
  std::array<std::uint8_t, kSaltBytes> salt{};
  for (std::size_t i = 0; i < kSaltBytes; i += 8) {
    const std::uint64_t bits = random.next_u64();
    for (std::size_t b = 0; b < 8; ++b)
      salt[i + b] = static_cast<std::uint8_t>(bits >> (8 * b));
  }
  const Sha256Digest digest = salted_digest(salt, key);
  std::string out(kScheme);
  out += to_hex(salt.data(), salt.size());
  out += '$';
  out += to_hex(digest.data(), digest.size());
  return out;
}

bool is_hashed_api_key(std::string_view stored) {
  return parse_stored(stored).has_value();
}

bool verify_api_key(std::string_view key, std::string_view stored) {
  if (key.size() > kMaxApiKeyBytes) return false;
  const std::optional<StoredKey> parsed = parse_stored(stored);
  if (!parsed) return false;
  const Sha256Digest digest = salted_digest(parsed->salt, key);
  return CRYPTO_memcmp(digest.data(), parsed->digest.data(), digest.size()) == 0;
}

}  // namespace spillway::fleet
