#include "fleet/api_key.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "core/random.h"

#include "fleet/secure_random.h"
#include "fleet/tenant_directory.h"

namespace spillway::fleet {
namespace {

TEST(ApiKey, Sha256MatchesKnownVector) {
  const Sha256Digest d = sha256("abc");
  EXPECT_EQ(d[0], 0xba);
  EXPECT_EQ(d[1], 0x78);
  EXPECT_EQ(d[31], 0xad);
}

TEST(ApiKey, HashVerifyRoundTrip) {
  SeededRandom random(7);
  const std::string key = generate_api_key(random);
  const std::string stored = hash_api_key(key, random);
  EXPECT_TRUE(is_hashed_api_key(stored));
  EXPECT_EQ(stored.size(), 7 + 32 + 1 + 64u);
  EXPECT_EQ(stored.rfind("sha256$", 0), 0u);
  EXPECT_EQ(stored.find(key), std::string::npos);
  EXPECT_TRUE(verify_api_key(key, stored));
  EXPECT_FALSE(verify_api_key(key + "x", stored));
  EXPECT_FALSE(verify_api_key(key.substr(0, key.size() - 1), stored));
  EXPECT_FALSE(verify_api_key("", stored));
  // A fresh salt gives a different stored form for the same key; both verify.
  const std::string again = hash_api_key(key, random);
  EXPECT_NE(again, stored);
  EXPECT_TRUE(verify_api_key(key, again));
}

TEST(ApiKey, MatchesAnIndependentlyComputedHash) {
  // Computed with Python's hashlib: sha256(bytes.fromhex(salt) + key).
  EXPECT_TRUE(verify_api_key("sk-spw-DemoKeyForTheExampleFleetOnly000",
                             "sha256$5f1c0a9e7b3d42e8a6c1f0d9b2e47a13$"
                             "99ca2a0846341cec30adcf068e7b0c1902c692c841d2875aaaafc8f6274dcd28"));
}

TEST(ApiKey, GeneratedKeysHaveTheDocumentedShape) {
  SeededRandom random(1);
  std::set<std::string> seen;
  for (int i = 0; i < 200; ++i) {
    const std::string key = generate_api_key(random);
    ASSERT_EQ(key.size(), kApiKeyPrefix.size() + kApiKeyRandomChars);
    ASSERT_EQ(key.rfind("sk-spw-", 0), 0u);
    for (char c : key.substr(kApiKeyPrefix.size())) {
      ASSERT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << key;
    }
    seen.insert(key);
  }
  EXPECT_EQ(seen.size(), 200u);
  SecureRandom secure;
  EXPECT_NE(generate_api_key(secure), generate_api_key(secure));
}

TEST(ApiKey, MalformedStoredFormsAreRejected) {
  const std::string good =
      "sha256$00112233445566778899aabbccddeeff$"
      "0000000000000000000000000000000000000000000000000000000000000000";
  EXPECT_TRUE(is_hashed_api_key(good));
  EXPECT_FALSE(is_hashed_api_key("sk-spw-abc"));
  EXPECT_FALSE(is_hashed_api_key(""));
  EXPECT_FALSE(is_hashed_api_key("sha256$$"));
  EXPECT_FALSE(is_hashed_api_key(good.substr(0, good.size() - 1)));
  EXPECT_FALSE(is_hashed_api_key(good + "0"));
  std::string upper = good;
  upper[7] = 'A';
  EXPECT_FALSE(is_hashed_api_key(upper));
  std::string md5 = good;
  md5.replace(0, 6, "md5xxx");
  EXPECT_FALSE(is_hashed_api_key(md5));
  EXPECT_FALSE(verify_api_key("anything", "sk-spw-plaintext"));
  EXPECT_FALSE(verify_api_key(std::string(kMaxApiKeyBytes + 1, 'a'), good));
}

FleetSpec two_tenants(Random& random, std::string key_a, std::string key_b) {
  FleetSpec spec;
  TenantSpec a;
  a.name = "a";
  a.api_key_hashes = {hash_api_key(key_a, random)};
  TenantSpec b;
  b.name = "b";
  b.api_key_hashes = {hash_api_key("unused", random), hash_api_key(key_b, random)};
  spec.tenants = {a, b};
  return spec;
}

TEST(TenantDirectory, FindsTenantsAndCachesAnswers) {
  SeededRandom random(3);
  const std::string key_a = generate_api_key(random);
  const std::string key_b = generate_api_key(random);
  TenantDirectory directory(two_tenants(random, key_a, key_b));
  EXPECT_EQ(directory.cached_keys(), 0u);
  EXPECT_EQ(directory.find(key_a), "a");
  EXPECT_EQ(directory.find(key_b), "b");
  EXPECT_EQ(directory.cached_keys(), 2u);
  EXPECT_EQ(directory.find(key_a), "a");  // From the cache.
  EXPECT_EQ(directory.cached_keys(), 2u);
  EXPECT_EQ(directory.find("sk-spw-wrong"), std::nullopt);
  EXPECT_EQ(directory.find("sk-spw-wrong"), std::nullopt);
  EXPECT_EQ(directory.cached_keys(), 3u);
  EXPECT_EQ(directory.find(""), std::nullopt);
  EXPECT_EQ(directory.find(std::string(kMaxApiKeyBytes + 1, 'k')), std::nullopt);
}

TEST(TenantDirectory, CachedKeysMatchOnlyThemselves) {
  SeededRandom random(6);
  const std::string key_a = generate_api_key(random);
  const std::string key_b = generate_api_key(random);
  TenantDirectory directory(two_tenants(random, key_a, key_b));
  EXPECT_EQ(directory.find_index(key_a), 0u);
  EXPECT_EQ(directory.find_index(key_b), 1u);
  // Keys of the same length as a cached one, differing in one byte (first, last), or a prefix
  // or an extension of it, are not that key.
  std::string first = key_a;
  first.front() ^= 1;
  std::string last = key_a;
  last.back() ^= 1;
  for (const std::string& other : {first, last, key_a.substr(0, key_a.size() - 1), key_a + "x"}) {
    EXPECT_EQ(directory.find_index(other), std::nullopt) << other;
    EXPECT_EQ(directory.find(other), std::nullopt) << other;
  }
  EXPECT_EQ(directory.find_index(key_a), 0u);  // Still cached as itself.
  EXPECT_EQ(directory.find(key_b), "b");
  EXPECT_EQ(directory.cached_keys(), 6u);
}

TEST(TenantDirectory, CacheIsBoundedAndAddedKeysWork) {
  SeededRandom random(4);
  const std::string key_a = generate_api_key(random);
  TenantDirectory directory(two_tenants(random, key_a, "b-key"), /*max_cached_keys=*/2);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(directory.find("bad-" + std::to_string(i)), std::nullopt);
    EXPECT_LE(directory.cached_keys(), 2u);
  }
  const std::string fresh = generate_api_key(random);
  EXPECT_EQ(directory.find(fresh), std::nullopt);  // Cached as unknown...
  ASSERT_TRUE(directory.add_key("b", hash_api_key(fresh, random)).ok());
  EXPECT_EQ(directory.find(fresh), "b");  // ...until a key is added.
  EXPECT_EQ(directory.add_key("nobody", hash_api_key(fresh, random)).code(), ErrorCode::kNotFound);
  EXPECT_EQ(directory.add_key("a", fresh).code(), ErrorCode::kInvalidArgument);
}

TEST(TenantDirectory, ConcurrentLookupsAgree) {
  SeededRandom random(5);
  const std::string key_a = generate_api_key(random);
  const std::string key_b = generate_api_key(random);
  TenantDirectory directory(two_tenants(random, key_a, key_b), 8);
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        if (directory.find(key_a) != "a") ++wrong;
        if (directory.find(key_b) != "b") ++wrong;
        if (directory.find("bad" + std::to_string(t * 1000 + i)).has_value()) ++wrong;
      }
    });
  }
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace spillway::fleet
