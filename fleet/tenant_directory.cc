#include "fleet/tenant_directory.h"

#include <openssl/crypto.h>

#include <functional>
#include <string>

#include "fleet/api_key.h"

namespace spillway::fleet {

namespace {

std::vector<std::string> tenant_names(const FleetSpec& spec) {
  std::vector<std::string> names;
  for (const TenantSpec& tenant : spec.tenants)
    names.push_back(tenant.name);
  return names;
}

}  // namespace

std::size_t TenantDirectory::KeyHash::operator()(std::string_view key) const noexcept {
  return std::hash<std::string_view>{}(key);
}

bool TenantDirectory::KeyEqual::operator()(std::string_view a, std::string_view b) const noexcept {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

TenantDirectory::TenantDirectory(const FleetSpec& spec, std::size_t max_cached_keys)
    : tenants_(tenant_names(spec)), max_cached_keys_(max_cached_keys) {
  auto keys = std::make_shared<KeyList>();
  for (std::size_t i = 0; i < spec.tenants.size(); ++i) {
    for (const std::string& hash : spec.tenants[i].api_key_hashes)
      keys->push_back(StoredKey{hash, i});
  }
  keys_ = std::move(keys);
}

TenantDirectory::~TenantDirectory() {
  std::lock_guard lock(mutex_);
  clear_cache_locked();
}

void TenantDirectory::clear_cache_locked() const {
  while (!cache_.empty()) {
    auto node = cache_.extract(cache_.begin());  // A node handle's key is writable.
    OPENSSL_cleanse(node.key().data(), node.key().size());
  }
}

std::optional<std::string> TenantDirectory::find(std::string_view api_key) const {
  const auto index = find_index(api_key);
  if (!index) return std::nullopt;
  return tenants_[*index];
}

std::optional<std::size_t> TenantDirectory::find_index(std::string_view api_key) const {
  if (api_key.empty() || api_key.size() > kMaxApiKeyBytes) return std::nullopt;
  std::shared_ptr<const KeyList> keys;
  std::uint64_t generation = 0;
  {
    std::lock_guard lock(mutex_);
    auto it = cache_.find(api_key);
    if (it != cache_.end()) {
      if (it->second < 0) return std::nullopt;
      return static_cast<std::size_t>(it->second);
    }
    keys = keys_;
    generation = generation_;
  }
  // Not cached: one salted hash per stored key, outside the lock.
  long tenant = -1;
  for (const StoredKey& stored : *keys) {
    if (verify_api_key(api_key, stored.hash)) {
      tenant = static_cast<long>(stored.tenant);
      break;
    }
  }
  {
    std::lock_guard lock(mutex_);
    // A key added meanwhile may make this answer stale: answer, but do not cache it.
    if (generation == generation_ && max_cached_keys_ > 0) {
      if (cache_.size() >= max_cached_keys_) clear_cache_locked();
      cache_.try_emplace(std::string(api_key), tenant);
    }
  }
  if (tenant < 0) return std::nullopt;
  return static_cast<std::size_t>(tenant);
}

Status TenantDirectory::add_key(std::string_view tenant, std::string stored_hash) {
  if (!is_hashed_api_key(stored_hash)) {
    return make_error(ErrorCode::kInvalidArgument,
                      "not a salted API key hash (\"sha256$<salt>$<digest>\")");
  }
  for (std::size_t i = 0; i < tenants_.size(); ++i) {
    if (tenants_[i] != tenant) continue;
    std::lock_guard lock(mutex_);
    auto keys = std::make_shared<KeyList>(*keys_);
    keys->push_back(StoredKey{std::move(stored_hash), i});
    keys_ = std::move(keys);
    ++generation_;
    clear_cache_locked();
    return Status();
  }
  return make_error(ErrorCode::kNotFound, "tenant '{}' does not exist", tenant);
}

std::size_t TenantDirectory::cached_keys() const {
  std::lock_guard lock(mutex_);
  return cache_.size();
}

}  // namespace spillway::fleet
