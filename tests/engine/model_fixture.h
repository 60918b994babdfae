// Shared helpers for engine tests: loading the shared stories260K model and generating small
// random models with `mkmodel`.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "engine/mkmodel.h"
#include "engine/model.h"

#include "test_support.h"

namespace spillway::testing {

inline std::string stories_gguf() {
  return shared_path("models/stories260K.gguf");
}
inline std::string vocab_gguf() {
  return shared_path("models/ggml-vocab-llama-spm.gguf");
}

inline std::unique_ptr<engine::Model> load_model_or_die(const engine::ModelLoadOptions& options) {
  auto m = engine::Model::load(options);
  EXPECT_TRUE(m.ok()) << m.error().message();
  return m.ok() ? std::move(m).value() : nullptr;
}

// Writes (once per test binary run) a random "tiny"-shaped model of `type` and returns its path.
inline std::string tiny_model_path(engine::GgmlType type, std::uint64_t seed = 7,
                                   const std::string& arch = "llama") {
  const std::string name = arch + "-" + std::string(engine::ggml_type_info(type).name);
  const auto dir = std::filesystem::path(SPILLWAY_BINARY_DIR) / "test_tmp" / "models";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / ("tiny-" + name + "-" + std::to_string(seed) + ".gguf")).string();
  if (!std::filesystem::exists(path)) {
    engine::MkModelOptions o;
    o.shape = *engine::named_model_shape("tiny");
    o.type = type;
    o.vocab_path = vocab_gguf();
    o.seed = seed;
    o.arch = arch;
    o.out_path = path;
    const Status s = engine::write_random_model(o);
    EXPECT_TRUE(s.ok()) << s.error().message();
  }
  return path;
}

}  // namespace spillway::testing
