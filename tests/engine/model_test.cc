// Loading models: hyper-parameters, formats, and one-line errors for bad files.
#include "engine/model.h"

#include <gtest/gtest.h>

#include <fstream>

#include "engine/gguf_writer.h"
#include "engine/kv_cache.h"

#include "model_fixture.h"

namespace spillway::engine {
namespace {

using spillway::testing::shared_path;

TEST(Model, Stories260KConfig) {
  SPW_REQUIRE_SHARED_FILE(spillway::testing::stories_gguf());
  auto m = spillway::testing::load_model_or_die({spillway::testing::stories_gguf(), ""});
  ASSERT_NE(m, nullptr);
  const ModelConfig& c = m->config();
  EXPECT_EQ(c.arch, Architecture::kLlama);
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_ff, 172);
  EXPECT_EQ(c.n_layer, 5);
  EXPECT_EQ(c.n_head, 8);
  EXPECT_EQ(c.n_head_kv, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.rope_dim, 8);
  EXPECT_EQ(c.n_vocab, 512);
  EXPECT_EQ(c.n_ctx_train, 2048);
  EXPECT_FLOAT_EQ(c.rope_freq_base, 10000.0f);
  EXPECT_EQ(m->vocab().bos_id, 1);
  EXPECT_EQ(m->output().name, "output.weight");
  EXPECT_FALSE(m->chat_template().has_value());
}

TEST(Model, Llama2cCheckpointHasSameWeights) {
  const std::string bin = shared_path("models/stories260K.bin");
  SPW_REQUIRE_SHARED_FILE(bin);
  auto a = spillway::testing::load_model_or_die({spillway::testing::stories_gguf(), ""});
  auto b = spillway::testing::load_model_or_die({bin, shared_path("models/tok512.bin")});
  ASSERT_TRUE(a && b);
  EXPECT_EQ(b->config().n_ctx_train, 512);
  EXPECT_EQ(b->output().name, "token_embd.weight");  // Shared classifier.
  const Matrix& wa = a->layers()[3].ffn_down;
  const Matrix& wb = b->layers()[3].ffn_down;
  ASSERT_EQ(wa.rows * wa.row_bytes, wb.rows * wb.row_bytes);
  EXPECT_EQ(std::memcmp(wa.data, wb.data, wa.rows * wa.row_bytes), 0);
}

class ModelErrors : public ::testing::Test {
 protected:
  std::string write(const std::string& name, const std::vector<std::byte>& bytes) {
    const auto path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
    return path;
  }
  Error load_error(const std::string& path, const std::string& tokenizer = "") {
    auto m = Model::load({path, tokenizer});
    EXPECT_FALSE(m.ok());
    return m.ok() ? Error(ErrorCode::kOk, "") : m.error();
  }
  std::filesystem::path dir_ = spillway::testing::temp_dir("model_errors");
};

TEST_F(ModelErrors, MissingFileAndRandomBytes) {
  EXPECT_EQ(load_error("/nonexistent/model.gguf").code(), ErrorCode::kNotFound);
  std::vector<std::byte> noise(4096);
  for (std::size_t i = 0; i < noise.size(); ++i)
    noise[i] = std::byte(i * 131 + 7);
  const Error e = load_error(write("noise.bin", noise));
  EXPECT_NE(e.message().find("--tokenizer"), std::string::npos) << e.message();
  const Error e2 = load_error(write("noise2.bin", noise), shared_path("models/tok512.bin"));
  EXPECT_EQ(e2.code(), ErrorCode::kDataLoss) << e2.message();
}

TEST_F(ModelErrors, VocabOnlyFileHasNoTensors) {
  SPW_REQUIRE_SHARED_FILE(spillway::testing::vocab_gguf());
  const Error e = load_error(spillway::testing::vocab_gguf());
  EXPECT_NE(e.message().find("no tensors"), std::string::npos) << e.message();
}

TEST_F(ModelErrors, MissingTensorAndUnknownArchitecture) {
  SPW_REQUIRE_SHARED_FILE(spillway::testing::stories_gguf());
  auto src = GgufFile::open(spillway::testing::stories_gguf());
  ASSERT_TRUE(src.ok());
  // Copy the model but drop one tensor / change the architecture.
  auto rewrite = [&](const std::string& skip_tensor, const std::string& arch) {
    GgufWriter w;
    for (const GgufKv& kv : src->metadata()) {
      if (kv.key == "general.architecture") {
        w.add_string(kv.key, arch);
      } else if (!kv.value.is_array() && kv.value.type() == GgufValueType::kUint32) {
        w.add_u32(kv.key, static_cast<std::uint32_t>(*kv.value.as_u64()));
      } else if (!kv.value.is_array() && kv.value.type() == GgufValueType::kFloat32) {
        w.add_f32(kv.key, static_cast<float>(*kv.value.as_f64()));
      } else if (!kv.value.is_array() && kv.value.type() == GgufValueType::kString) {
        w.add_string(kv.key, *kv.value.as_string());
      } else if (kv.value.is_array() && kv.value.array_type() == GgufValueType::kString) {
        std::vector<std::string> items;
        for (std::uint64_t i = 0; i < kv.value.array_size(); ++i) {
          items.emplace_back(*kv.value.string_at(i));
        }
        w.add_string_array(kv.key, items);
      } else if (kv.value.is_array() && kv.value.array_type() == GgufValueType::kFloat32) {
        std::vector<float> items;
        for (std::uint64_t i = 0; i < kv.value.array_size(); ++i)
          items.push_back(*kv.value.f32_at(i));
        w.add_f32_array(kv.key, items);
      } else if (kv.value.is_array()) {
        std::vector<std::int32_t> items;
        for (std::uint64_t i = 0; i < kv.value.array_size(); ++i) {
          items.push_back(static_cast<std::int32_t>(*kv.value.int_at(i)));
        }
        w.add_i32_array(kv.key, items);
      }
    }
    for (const GgufTensorInfo& t : src->tensors()) {
      if (t.name == skip_tensor) continue;
      w.add_tensor(t.name, t.type, t.shape, std::span(t.data, t.nbytes));
    }
    auto bytes = w.serialize();
    EXPECT_TRUE(bytes.ok());
    return write(skip_tensor + arch + ".gguf", *bytes);
  };
  // Sanity: the unmodified copy loads.
  ASSERT_TRUE(Model::load({rewrite("", "llama"), ""}).ok());
  const Error missing = load_error(rewrite("blk.2.ffn_up.weight", "llama"));
  EXPECT_EQ(missing.code(), ErrorCode::kNotFound);
  EXPECT_NE(missing.message().find("missing tensor 'blk.2.ffn_up.weight'"), std::string::npos);
  const Error arch = load_error(rewrite("", "mamba"));
  EXPECT_EQ(arch.code(), ErrorCode::kUnimplemented);
  EXPECT_NE(arch.message().find("unsupported architecture 'mamba'"), std::string::npos);
}

TEST(KvBlockAllocator, RefCountsAndExhaustion) {
  KvBlockAllocator a(3);
  auto b0 = a.allocate(), b1 = a.allocate(), b2 = a.allocate();
  ASSERT_TRUE(b0 && b1 && b2);
  EXPECT_EQ(*b0, 0);
  EXPECT_FALSE(a.allocate().has_value());
  a.retain(*b1);
  a.release(*b1);
  EXPECT_EQ(a.free_blocks(), 0);
  a.release(*b1);
  EXPECT_EQ(a.free_blocks(), 1);
  EXPECT_EQ(*a.allocate(), *b1);
}

TEST(MkModel, RejectsBadShapesAndTypes) {
  EXPECT_FALSE(named_model_shape("gpt-5").ok());
  EXPECT_NE(named_model_shape("gpt-5").error().message().find("tinyllama-1.1b"), std::string::npos);
  EXPECT_FALSE(parse_weight_type("q3_k").ok());
  EXPECT_EQ(*parse_weight_type("q4_k"), GgmlType::kQ4_K);
  MkModelOptions o;
  o.shape = *named_model_shape("tiny");
  o.shape.n_embd = 100;  // Not a multiple of Q8_0's 32-element blocks.
  o.type = GgmlType::kQ8_0;
  o.vocab_path = spillway::testing::vocab_gguf();
  o.out_path = (spillway::testing::temp_dir("mkmodel") / "bad.gguf").string();
  EXPECT_EQ(write_random_model(o).code(), ErrorCode::kInvalidArgument);
}

TEST(MkModel, SameSeedSameBytesAndLoadable) {
  SPW_REQUIRE_SHARED_FILE(spillway::testing::vocab_gguf());
  const std::string a = spillway::testing::tiny_model_path(GgmlType::kQ4_0, 3);
  auto m = spillway::testing::load_model_or_die({a, ""});
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->config().n_embd, 256);
  EXPECT_EQ(m->config().n_vocab, 32000);
  EXPECT_EQ(m->layers()[0].wq.type, GgmlType::kQ4_0);
  MkModelOptions o;
  o.shape = *named_model_shape("tiny");
  o.type = GgmlType::kQ4_0;
  o.vocab_path = spillway::testing::vocab_gguf();
  o.seed = 3;
  o.out_path = (spillway::testing::temp_dir("mkmodel_again") / "again.gguf").string();
  ASSERT_TRUE(write_random_model(o).ok());
  std::ifstream fa(a, std::ios::binary), fb(o.out_path, std::ios::binary);
  const std::string ba{std::istreambuf_iterator<char>(fa), {}};
  const std::string bb{std::istreambuf_iterator<char>(fb), {}};
  EXPECT_TRUE(ba == bb);
}

// Without a vocabulary file, mkmodel writes a self-contained byte-level tokenizer (the
// smoke-test model of `spillway up`): any text encodes byte by byte and decodes exactly.
TEST(MkModel, BuiltInByteVocabularyRoundTrips) {
  MkModelOptions o;
  o.shape = *named_model_shape("tiny");
  o.type = GgmlType::kQ8_0;
  o.out_path = (spillway::testing::temp_dir("mkmodel_bytes") / "smoke.gguf").string();
  ASSERT_TRUE(write_random_model(o).ok());
  auto m = spillway::testing::load_model_or_die({o.out_path, ""});
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->config().n_vocab, 260);
  const std::string text = "Hi \xc3\xa9!";  // Includes a two-byte character.
  auto ids = m->tokenizer().encode(text, true, false);
  ASSERT_TRUE(ids.ok());
  // BOS, the space prefix, then a token per byte except for the space, which is one piece.
  ASSERT_EQ(ids->size(), 1u + 1u + text.size());
  EXPECT_EQ((*ids)[0], 1);
  std::string decoded;
  for (std::size_t i = 1; i < ids->size(); ++i)
    decoded += m->tokenizer().token_to_piece((*ids)[i]);
  EXPECT_EQ(decoded, " " + text);
}

}  // namespace
}  // namespace spillway::engine
