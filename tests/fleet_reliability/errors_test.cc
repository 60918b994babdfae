// Clear errors at the edges of the whole stack: malformed fleet files given to the real
// `spillway up` (one line naming file, line, column and key; a nonzero exit; no replica left
// behind), and bad requests through the gateway (OpenAI error bodies, nothing charged to the
// tenant, nothing run on a replica). The fleet parser's own messages are covered key by key in
// tests/fleet/fleet_spec_test.cc; this covers what only the assembled binary and stack show.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <boost/json.hpp>

#include "fleet_harness.h"
#include "test_support.h"

namespace spillway::reliability {
namespace {

namespace json = boost::json;

struct RunResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together.
};

// Runs `spillway up --config FILE --port 0`, bounded by `timeout` (it must fail long before).
RunResult run_up(const std::filesystem::path& config) {
  const std::string command =
      fmt::format("timeout -s KILL 60 '{}' up --config '{}' --port 0 --ready-timeout 30 2>&1",
                  spillway_bin(), config.string());
  RunResult r;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buffer[4096];
  std::size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0)
    r.output.append(buffer, n);
  const int status = ::pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string replace(std::string text, std::string_view from, std::string_view to) {
  const auto at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) text.replace(at, from.size(), to);
  return text;
}

TEST(FleetReliability, SpillwayUpRejectsMalformedFleetFilesWithTheirLocation) {
  SPW_REQUIRE_SHARED_FILE(model_path());
  const auto dir = spillway::testing::temp_dir("fleet_reliability_errors");
  const std::string valid = fleet_toml(FleetConfig{});
  struct Case {
    std::string name;
    std::string text;
    int exit_code;
    std::string expected;  // Part of the one-line error, after "spillway up: ".
  };
  const std::vector<Case> cases = {
      {"syntax", replace(valid, "[[models]]", "[[models]"), 2, "syntax.toml:"},
      {"unknown-key", replace(valid, "gpus_per_node = 1", "gpus_per_node = 1\n    gpu_count = 2"),
       2, "unknown-key.toml:12:17: providers[0].regions[0].pools[0].gpu_count: unknown key"},
      {"bad-type", replace(valid, "gpus = 2", "gpus = \"two\""), 2,
       "bad-type.toml:10:12: providers[0].regions[0].pools[0].gpus: expected an integer"},
      {"plaintext-key",
       replace(valid, "api_keys = [\"sha256$", "api_keys = [\"sk-secret-x\", \"sha256$"), 2,
       "plaintext-key.toml:45:12: tenants[0].api_keys: entry 0 is not a salted hash"},
      {"unknown-model",
       replace(valid, "priority = \"interactive\"",
               "priority = \"interactive\"\nmodels = [\"gpt\"]"),
       2, "unknown-model.toml:47:10: tenants[0].models: model 'gpt' is not defined in [[models]]"},
      {"missing-model-file", replace(valid, model_path(), "/nonexistent/stories.gguf"), 1,
       "models[0].path: cannot read '/nonexistent/stories.gguf'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const auto path = dir / (c.name + ".toml");
    std::ofstream(path) << c.text;
    const RunResult r = run_up(path);
    EXPECT_EQ(r.exit_code, c.exit_code) << r.output;
    const std::string expected =
        "spillway up: " + (c.name == "missing-model-file" ? "" : (dir / "").string()) + c.expected;
    EXPECT_NE(r.output.find(expected), std::string::npos)
        << "expected: " << expected << "\noutput: " << r.output;
    EXPECT_EQ(r.output.find("sk-secret-x"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("Spillway is up"), std::string::npos) << r.output;
  }
}

struct Expected {
  int status;
  std::string type;
  std::optional<std::string> param;
};

void expect_error(const Reply& r, const Expected& e, const std::string& what) {
  SCOPED_TRACE(what);
  ASSERT_TRUE(r.transport.ok()) << r.transport.error().to_string();
  EXPECT_EQ(r.status, e.status) << r.body;
  boost::system::error_code ec;
  const json::value v = json::parse(r.body, ec);
  ASSERT_FALSE(ec) << r.body;
  ASSERT_TRUE(v.is_object() && v.as_object().contains("error")) << r.body;
  ASSERT_TRUE(v.at("error").is_object()) << r.body;
  const json::object& error = v.at("error").as_object();
  for (const char* key : {"message", "type", "param", "code"}) {
    ASSERT_TRUE(error.contains(key)) << key << " missing in " << r.body;
  }
  ASSERT_TRUE(error.at("type").is_string() && error.at("message").is_string()) << r.body;
  EXPECT_EQ(error.at("type").as_string(), e.type) << r.body;
  EXPECT_FALSE(error.at("message").as_string().empty());
  if (e.param) {
    ASSERT_TRUE(error.at("param").is_string()) << r.body;
    EXPECT_EQ(error.at("param").as_string(), *e.param) << r.body;
  }
  EXPECT_TRUE(r.headers.get("Content-Type").value_or("").starts_with("application/json"));
}

TEST(FleetReliability, BadRequestsThroughTheStackGetOpenAiErrorsAndCostNothing) {
  SPW_REQUIRE_SHARED_FILE(model_path());
  auto fleet = Fleet::start(FleetConfig{});
  ASSERT_TRUE(fleet);
  const std::string chat = "/v1/chat/completions";
  const auto msg = [](const std::string& extra) {
    return fmt::format(R"({{"model":"stories","messages":[{{"role":"user","content":"Hi"}}]{}}})",
                       extra);
  };

  expect_error(fleet->call("POST", chat, msg(""), ""), {401, "authentication_error", {}}, "no key");
  expect_error(fleet->call("POST", chat, msg(""), fleet->control().internal_api_key()),
               {401, "authentication_error", {}}, "the replicas' internal key");
  expect_error(fleet->call("POST", chat, "[1,2", kTenantKey), {400, "invalid_request_error", {}},
               "broken JSON");
  expect_error(fleet->call("POST", chat, R"({"model":"stories","messages":"Hi"})"),
               {400, "invalid_request_error", "messages"}, "messages not an array");
  expect_error(fleet->call("POST", chat, msg(R"(,"n":1000)")), {400, "invalid_request_error", "n"},
               "n beyond the limit");
  expect_error(fleet->call("POST", chat, msg(R"(,"max_tokens":-1)")),
               {400, "invalid_request_error", "max_tokens"}, "negative max_tokens");
  expect_error(fleet->call("POST", chat, msg(R"(,"stream":"yes")")),
               {400, "invalid_request_error", "stream"}, "stream not a boolean");
  expect_error(
      fleet->call("POST", chat, R"({"model":"gpt-4","messages":[{"role":"user","content":"x"}]})"),
      {404, "not_found_error", "model"}, "unknown model");
  // The HTTP server's own answers: a clear status and message, and the body still reaches the
  // client although it stopped sending before the server read all of it. (Their body shape is
  // the server's error renderer, which `spillway up` sets.)
  const auto expect_server_error = [](const Reply& r, int status, const std::string& what) {
    SCOPED_TRACE(what);
    ASSERT_TRUE(r.transport.ok()) << r.transport.error().to_string();
    EXPECT_EQ(r.status, status) << r.body;
    boost::system::error_code ec;
    const json::value v = json::parse(r.body, ec);
    ASSERT_FALSE(ec) << r.body;
    const auto* error = v.is_object() ? v.as_object().if_contains("error") : nullptr;
    ASSERT_TRUE(error != nullptr && error->is_object()) << r.body;
    const auto* message = error->as_object().if_contains("message");
    ASSERT_TRUE(message != nullptr && message->is_string() && !message->as_string().empty())
        << r.body;
  };
  expect_server_error(
      fleet->call("POST", chat, msg(R"(,"pad":")" + std::string(5u << 20, 'x') + "\"")), 413,
      "body over the limit");
  expect_server_error(fleet->call("GET", chat), 405, "wrong method");
  expect_server_error(fleet->call("POST", "/v1/embeddings", msg("")), 404, "unknown route");
  expect_error(fleet->call("POST", "/v1/fleet/pools/nope/drain", "", ""),
               {404, "not_found_error", {}}, "drain of an unknown pool");

  // A prompt beyond the model's context is found by the replica; its 400 comes back as is.
  const Reply too_long = fleet->call(
      "POST", "/v1/completions",
      fmt::format(R"({{"model":"stories","prompt":"{}","max_tokens":4}})", std::string(3000, 'a')));
  expect_error(too_long, {400, "invalid_request_error", {}}, "prompt beyond the context");

  // Nothing was charged, and only the over-long prompt reached a replica (and ran nothing).
  const fleet::TokenQuota* quota = fleet->gateway().quota("demo");
  EXPECT_EQ(quota->tokens_in_window(), 0);
  EXPECT_EQ(quota->requests_in_window(), 0);
  for (const auto& r : fleet->ready_replicas()) {
    EXPECT_EQ(fleet->replica_metric(r.view.url, "spillway:generation_tokens_total").value_or(-1),
              0.0)
        << r.view.id;
  }
  // And the stack still serves.
  const Reply ok = fleet->call("POST", chat, msg(R"(,"max_tokens":4)"));
  EXPECT_EQ(ok.status, 200) << ok.body;
}

}  // namespace
}  // namespace spillway::reliability
