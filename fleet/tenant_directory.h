// Maps a presented API key to its tenant.
//
// A key is checked against every stored salted hash (fleet/api_key.h) the first time it is
// seen; the answer is then cached under the presented key's bytes, so a repeated request costs
// one lookup (a non-cryptographic hash picks the bucket; the key bytes are compared in constant
// time, as verify_api_key compares digests). The cache is the only place the directory keeps a
// presented key, in memory: it is bounded (`max_cached_keys` entries, cleared when full or when
// a key is added), its entries are wiped (OPENSSL_cleanse) when dropped, and keys are never
// logged. Unknown keys are cached too (a misconfigured client retrying a bad key stays cheap).
//
// Cost of a key not in the cache: one salted SHA-256 per stored hash in the fleet, bounded
// by FleetLimits::max_api_keys.
//
// Thread-safety: safe for concurrent use. The directory copies what it needs from the spec;
// build a new one when the fleet file changes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fleet/fleet_spec.h"

namespace spillway::fleet {

class TenantDirectory {
 public:
  explicit TenantDirectory(const FleetSpec& spec, std::size_t max_cached_keys = 65536);

  // The tenant's name, or nullopt for an unknown (or over-long) key. Never logs the key.
  [[nodiscard]] std::optional<std::string> find(std::string_view api_key) const;
  // The same answer as the tenant's index in the spec's `tenants` (no string copy).
  [[nodiscard]] std::optional<std::size_t> find_index(std::string_view api_key) const;

  // Adds a stored hash for `tenant` at run time (e.g. `spillway up --api-key`) and clears the
  // cache. kNotFound for an unknown tenant, kInvalidArgument for a malformed hash.
  [[nodiscard]] Status add_key(std::string_view tenant, std::string stored_hash);

  // Entries currently cached (for tests and metrics).
  [[nodiscard]] std::size_t cached_keys() const;

  ~TenantDirectory();
  TenantDirectory(const TenantDirectory&) = delete;
  TenantDirectory& operator=(const TenantDirectory&) = delete;

 private:
  struct StoredKey {
    std::string hash;  // Stored form.
    std::size_t tenant;
  };
  using KeyList = std::vector<StoredKey>;
  // Presented key bytes: std::hash picks the bucket, equality is constant-time for equal
  // lengths. Transparent, so lookups take a string_view without copying the key.
  struct KeyHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view key) const noexcept;
  };
  struct KeyEqual {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const noexcept;
  };
  using Cache = std::unordered_map<std::string, long, KeyHash, KeyEqual>;

  // Wipes the cached keys' bytes, then empties the cache. REQUIRES: mutex_ held.
  void clear_cache_locked() const;

  const std::vector<std::string> tenants_;  // Index = tenant number.
  const std::size_t max_cached_keys_;

  mutable std::mutex mutex_;
  // Replaced (never modified) by add_key, so find() can verify against a snapshot unlocked.
  std::shared_ptr<const KeyList> keys_;  // Guarded by mutex_.
  std::uint64_t generation_ = 0;         // Guarded by mutex_; bumped by add_key.
  // Presented key -> tenant number, or -1 for an unknown key.
  mutable Cache cache_;  // Guarded by mutex_.
};

}  // namespace spillway::fleet
