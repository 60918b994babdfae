#include "core/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "test_support.h"

namespace spillway {
namespace {

constexpr const char* kFleet = R"(name = "demo"
[gateway]
port = 8080
max_connections = 1024

[[pools]]
name = "azure-eastus"
gpus = 8
cost_per_gpu_hour = 2.5

[[pools]]
name = "oci-phoenix"
gpus = "lots"
)";

ConfigDocument parse_ok(std::string_view text) {
  auto doc = ConfigDocument::parse(text, "fleet.toml");
  EXPECT_TRUE(doc.ok()) << doc.error().message();
  return std::move(doc).value();
}

TEST(Config, ReadsTypedValues) {
  ConfigDocument doc = parse_ok(kFleet);
  ConfigTable root = doc.root();
  EXPECT_EQ(*root.string("name"), "demo");
  auto gw = root.table("gateway");
  ASSERT_TRUE(gw.ok());
  EXPECT_EQ(gw->path(), "gateway");
  EXPECT_EQ(*gw->integer("port", 1, 65535), 8080);
  EXPECT_EQ(*gw->integer_or("timeout_s", 30, 1, 3600), 30);
  auto pools = root.tables("pools");
  ASSERT_TRUE(pools.ok());
  ASSERT_EQ(pools->size(), 2u);
  EXPECT_EQ((*pools)[0].path(), "pools[0]");
  EXPECT_DOUBLE_EQ(*(*pools)[0].number("cost_per_gpu_hour", 0, 1000), 2.5);
  EXPECT_EQ(root.keys(), (std::vector<std::string>{"gateway", "name", "pools"}));
}

TEST(Config, WrongTypeNamesFileLineAndKey) {
  ConfigDocument doc = parse_ok(kFleet);
  auto pools = doc.root().tables("pools");
  ASSERT_TRUE(pools.ok());
  auto gpus = (*pools)[1].integer("gpus", 1, 65536);
  ASSERT_FALSE(gpus.ok());
  EXPECT_EQ(gpus.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(gpus.error().message(),
            "fleet.toml:13:8: pools[1].gpus: expected an integer, got a string");
}

TEST(Config, OutOfRangeAndMissing) {
  ConfigDocument doc = parse_ok(kFleet);
  auto gw = doc.root().table("gateway");
  auto port = gw->integer("port", 1, 1000);
  ASSERT_FALSE(port.ok());
  EXPECT_EQ(port.error().message(), "fleet.toml:3:8: gateway.port: 8080 is out of range [1, 1000]");
  auto missing = gw->string("host");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("gateway.host: required key is missing"),
            std::string::npos);
  EXPECT_NE(missing.error().message().find("fleet.toml:2:"), std::string::npos);
}

TEST(Config, UnknownKeyIsAnError) {
  ConfigDocument doc = parse_ok("[gateway]\nport = 1\nprot = 2\n");
  auto gw = doc.root().table("gateway");
  Status s = gw->check_keys({"port", "host"});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(),
            "fleet.toml:3:8: gateway.prot: unknown key (allowed here: port, host)");
  EXPECT_TRUE(gw->check_keys({"port", "prot"}).ok());
}

TEST(Config, SyntaxErrorHasLineAndColumn) {
  auto doc = ConfigDocument::parse("a = 1\nb = = 2\n", "bad.toml");
  ASSERT_FALSE(doc.ok());
  EXPECT_EQ(doc.error().message().rfind("bad.toml:2:", 0), 0u) << doc.error().message();
}

TEST(Config, NumbersRejectNanAndAcceptIntegers) {
  ConfigDocument doc = parse_ok("x = nan\ny = 3\n");
  EXPECT_FALSE(doc.root().number("x", 0, 10).ok());
  EXPECT_DOUBLE_EQ(*doc.root().number("y", 0, 10), 3.0);
}

TEST(Config, StringsArrayChecksElements) {
  ConfigDocument doc = parse_ok("w = [\"inference\", 3]\n");
  auto w = doc.root().strings("w");
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.error().message().find("w[1]: expected a string, got an integer"), std::string::npos);
}

TEST(Config, ErrorAtForCustomRules) {
  ConfigDocument doc = parse_ok("[pool]\nkind = \"spot\"\n");
  Error e = doc.root().table("pool")->error_at("kind", "spot pools cannot run training");
  EXPECT_EQ(e.message(), "fleet.toml:2:8: pool.kind: spot pools cannot run training");
}

TEST(Config, LoadFileMissingAndPresent) {
  auto missing = ConfigDocument::load_file("/nonexistent/spillway.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);

  auto dir = testing::temp_dir("config_load");
  const std::string path = (dir / "x.toml").string();
  std::ofstream(path) << "k = true\n";
  auto doc = ConfigDocument::load_file(path);
  ASSERT_TRUE(doc.ok());
  EXPECT_TRUE(*doc->root().boolean("k"));
  EXPECT_EQ(doc->source_name(), path);
}

}  // namespace
}  // namespace spillway
