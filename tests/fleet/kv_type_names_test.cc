#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <string_view>

#include "engine/kv_cache.h"

#include "fleet/fleet_spec.h"

namespace spillway::fleet {
namespace {

// A fleet file's kv_type reaches the replicas as `spillway serve --kv-type`: every name the
// fleet file takes must parse there, and every KV cache type the engine has must be a name the
// fleet file takes.
TEST(KvTypeNames, TheFleetFileTakesExactlyTheEngineTypes) {
  for (std::string_view name : kLocalKvTypes) {
    auto type = engine::parse_kv_type(name);
    ASSERT_TRUE(type.ok()) << name << ": " << type.error().message();
    EXPECT_EQ(engine::kv_type_name(*type), name);
  }
  for (engine::KvType type : engine::kKvTypes) {
    const std::string_view name = engine::kv_type_name(type);
    EXPECT_NE(std::find(std::begin(kLocalKvTypes), std::end(kLocalKvTypes), name),
              std::end(kLocalKvTypes))
        << name << " is missing from fleet::kLocalKvTypes";
  }
  EXPECT_EQ(std::size(kLocalKvTypes), std::size(engine::kKvTypes));
}

}  // namespace
}  // namespace spillway::fleet
