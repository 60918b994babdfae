#include "engine/mkmodel.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "core/random.h"

#include "engine/gguf.h"
#include "engine/gguf_writer.h"
#include "engine/quant.h"

namespace spillway::engine {
namespace {

const ModelShape kShapes[] = {
    {"tinyllama-1.1b", 2048, 5632, 22, 32, 4, 2048},
    {"llama-110m", 768, 2048, 12, 12, 12, 1024},
    {"tiny", 256, 512, 2, 4, 2, 512},
};

// llama_ftype numbers for general.file_type.
std::uint32_t file_type(GgmlType t) {
  switch (t) {
    case GgmlType::kF32:
      return 0;
    case GgmlType::kF16:
      return 1;
    case GgmlType::kQ4_0:
      return 2;
    case GgmlType::kQ8_0:
      return 7;
    case GgmlType::kQ4_K:
      return 15;  // Q4_K_M
    case GgmlType::kQ6_K:
      return 18;
    case GgmlType::kBF16:
      return 32;
    default:
      return 0;
  }
}

// A self-contained SentencePiece vocabulary of <unk>, <s>, </s>, the space piece U+2581 and
// the 256 byte tokens <0x00>..<0xFF>: any text tokenizes (spaces as one token, everything else
// byte by byte) and decodes exactly, with no file needed.
void add_byte_tokenizer(GgufWriter& w, std::int32_t* n_vocab) {
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>", "\u2581"};
  std::vector<std::int32_t> types = {2, 3, 3, 1};  // Unknown, control, control, normal.
  std::vector<float> scores = {0.0f, 0.0f, 0.0f, 0.0f};
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(fmt::format("<0x{:02X}>", b));
    types.push_back(6);  // Byte.
    scores.push_back(0.0f);
  }
  w.add_string("tokenizer.ggml.model", "llama");
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  w.add_f32_array("tokenizer.ggml.scores", scores);
  w.add_i32_array("tokenizer.ggml.token_type", types);
  w.add_u32("tokenizer.ggml.bos_token_id", 1);
  w.add_u32("tokenizer.ggml.eos_token_id", 2);
  w.add_u32("tokenizer.ggml.unknown_token_id", 0);
  *n_vocab = static_cast<std::int32_t>(tokens.size());
}

// Copies every tokenizer.* key of the vocabulary file.
Status copy_tokenizer(const GgufFile& vocab, GgufWriter& w, std::int32_t* n_vocab) {
  *n_vocab = 0;
  for (const GgufKv& kv : vocab.metadata()) {
    if (!kv.key.starts_with("tokenizer.")) continue;
    const GgufValue& v = kv.value;
    if (!v.is_array()) {
      switch (v.type()) {
        case GgufValueType::kString: {
          SPW_ASSIGN_OR_RETURN(auto s, v.as_string());
          w.add_string(kv.key, s);
          break;
        }
        case GgufValueType::kBool: {
          SPW_ASSIGN_OR_RETURN(bool b, v.as_bool());
          w.add_bool(kv.key, b);
          break;
        }
        case GgufValueType::kFloat32:
        case GgufValueType::kFloat64: {
          SPW_ASSIGN_OR_RETURN(double f, v.as_f64());
          w.add_f32(kv.key, static_cast<float>(f));
          break;
        }
        default: {
          SPW_ASSIGN_OR_RETURN(std::uint64_t u, v.as_u64());
          w.add_u32(kv.key, static_cast<std::uint32_t>(u));
        }
      }
      continue;
    }
    const std::uint64_t n = v.array_size();
    if (v.array_type() == GgufValueType::kString) {
      std::vector<std::string> items;
      items.reserve(n);
      for (std::uint64_t i = 0; i < n; ++i) {
        SPW_ASSIGN_OR_RETURN(auto s, v.string_at(i));
        items.emplace_back(s);
      }
      if (kv.key == "tokenizer.ggml.tokens") *n_vocab = static_cast<std::int32_t>(n);
      w.add_string_array(kv.key, items);
    } else if (v.array_type() == GgufValueType::kFloat32) {
      std::vector<float> items(n);
      for (std::uint64_t i = 0; i < n; ++i) {
        SPW_ASSIGN_OR_RETURN(items[i], v.f32_at(i));
      }
      w.add_f32_array(kv.key, items);
    } else {
      std::vector<std::int32_t> items(n);
      for (std::uint64_t i = 0; i < n; ++i) {
        SPW_ASSIGN_OR_RETURN(std::int64_t x, v.int_at(i));
        items[i] = static_cast<std::int32_t>(x);
      }
      w.add_i32_array(kv.key, items);
    }
  }
  if (*n_vocab == 0) {
    return Error(ErrorCode::kInvalidArgument, "vocabulary file has no tokenizer.ggml.tokens");
  }
  return Status();
}

// A matrix of uniform random values with standard deviation `stddev`, produced row by row.
// Each tensor has its own generator (seeded from the model seed and the tensor's index), so the
// bytes do not depend on how the writer chunks rows.
GgufWriter::TensorFill random_rows(GgmlType type, std::int64_t cols, std::uint64_t seed,
                                   float stddev) {
  const std::size_t row_bytes = *ggml_row_bytes(type, cols);
  auto rng = std::make_shared<SeededRandom>(seed);
  auto row = std::make_shared<std::vector<float>>(static_cast<std::size_t>(cols));
  const float half_width = stddev * std::sqrt(3.0f);
  return [=](std::int64_t, std::span<std::byte> out) -> Status {
    for (std::size_t off = 0; off + row_bytes <= out.size(); off += row_bytes) {
      for (float& x : *row)
        x = static_cast<float>((rng->uniform() * 2.0 - 1.0) * half_width);
      quantize_row(type, row->data(), out.data() + off, cols);
    }
    return Status();
  };
}

}  // namespace

Result<ModelShape> named_model_shape(std::string_view name) {
  for (const ModelShape& s : kShapes) {
    if (s.name == name) return s;
  }
  return make_error(ErrorCode::kInvalidArgument, "unknown shape '{}' (known: {})", name,
                    fmt::join(named_model_shapes(), ", "));
}

std::vector<std::string> named_model_shapes() {
  std::vector<std::string> out;
  for (const ModelShape& s : kShapes)
    out.push_back(s.name);
  return out;
}

Result<GgmlType> parse_weight_type(std::string_view name) {
  for (GgmlType t : {GgmlType::kF32, GgmlType::kF16, GgmlType::kBF16, GgmlType::kQ8_0,
                     GgmlType::kQ4_0, GgmlType::kQ4_K, GgmlType::kQ6_K}) {
    std::string n(ggml_type_info(t).name);
    std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
    if (n == name) return t;
  }
  return make_error(ErrorCode::kInvalidArgument,
                    "unknown weight type '{}' (known: f32, f16, bf16, q8_0, q4_0, q4_k, q6_k)",
                    name);
}

Status write_random_model(const MkModelOptions& o) {
  const ModelShape& s = o.shape;
  const std::int64_t block = ggml_type_info(o.type).block_elements;
  if (s.n_embd % s.n_head != 0 || s.n_head % s.n_head_kv != 0) {
    return make_error(ErrorCode::kInvalidArgument, "shape {}: heads do not divide the widths",
                      s.name);
  }
  const std::int64_t head_dim = s.n_embd / s.n_head;
  const std::int64_t kv_dim = head_dim * s.n_head_kv;
  for (std::int64_t cols :
       {static_cast<std::int64_t>(s.n_embd), static_cast<std::int64_t>(s.n_ff)}) {
    if (cols % block != 0) {
      return make_error(ErrorCode::kInvalidArgument,
                        "shape {}: width {} is not a multiple of {}'s block size {}", s.name, cols,
                        ggml_type_info(o.type).name, block);
    }
  }
  if (o.arch != "llama" && o.arch != "qwen2") {
    return make_error(ErrorCode::kInvalidArgument, "unknown architecture '{}' (llama, qwen2)",
                      o.arch);
  }
  std::optional<GgufFile> vocab;
  if (!o.vocab_path.empty()) {
    SPW_ASSIGN_OR_RETURN(vocab, GgufFile::open(o.vocab_path));
  }

  GgufWriter w;
  const std::string a = o.arch + ".";
  w.add_string("general.architecture", o.arch);
  w.add_string("general.name", fmt::format("spillway-random-{}", s.name));
  w.add_u32("general.file_type", file_type(o.type));
  w.add_u32(a + "context_length", static_cast<std::uint32_t>(s.n_ctx));
  w.add_u32(a + "embedding_length", static_cast<std::uint32_t>(s.n_embd));
  w.add_u32(a + "block_count", static_cast<std::uint32_t>(s.n_layer));
  w.add_u32(a + "feed_forward_length", static_cast<std::uint32_t>(s.n_ff));
  w.add_u32(a + "attention.head_count", static_cast<std::uint32_t>(s.n_head));
  w.add_u32(a + "attention.head_count_kv", static_cast<std::uint32_t>(s.n_head_kv));
  w.add_u32(a + "rope.dimension_count", static_cast<std::uint32_t>(head_dim));
  w.add_f32(a + "rope.freq_base", 10000.0f);
  w.add_f32(a + "attention.layer_norm_rms_epsilon", 1e-5f);
  std::int32_t n_vocab = 0;
  if (vocab) {
    SPW_TRY(copy_tokenizer(*vocab, w, &n_vocab));
  } else {
    add_byte_tokenizer(w, &n_vocab);
  }
  w.add_u32(a + "vocab_size", static_cast<std::uint32_t>(n_vocab));

  std::uint64_t tensor_index = 0;
  auto add_matrix = [&](const std::string& name, std::int64_t cols, std::int64_t rows,
                        float stddev) {
    w.add_tensor(
        name, o.type, {cols, rows},
        random_rows(o.type, cols, o.seed * 0x9E3779B97F4A7C15ULL + ++tensor_index, stddev));
  };
  const std::vector<float> ones(static_cast<std::size_t>(s.n_embd), 1.0f);
  // Qwen2's attention biases: small deterministic values, the same for every layer.
  std::vector<float> bias(static_cast<std::size_t>(s.n_embd));
  for (std::size_t i = 0; i < bias.size(); ++i)
    bias[i] = 0.05f * std::sin(0.37f * static_cast<float>(i));
  const auto bias_bytes = std::as_bytes(std::span(bias));
  const auto ones_bytes = std::as_bytes(std::span(ones));
  const float init = 0.02f;
  add_matrix("token_embd.weight", s.n_embd, n_vocab, 1.0f);
  w.add_tensor("output_norm.weight", GgmlType::kF32, {s.n_embd}, ones_bytes);
  add_matrix("output.weight", s.n_embd, n_vocab, init);
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string p = fmt::format("blk.{}.", l);
    w.add_tensor(p + "attn_norm.weight", GgmlType::kF32, {s.n_embd}, ones_bytes);
    add_matrix(p + "attn_q.weight", s.n_embd, s.n_embd, init);
    add_matrix(p + "attn_k.weight", s.n_embd, kv_dim, init);
    add_matrix(p + "attn_v.weight", s.n_embd, kv_dim, init);
    add_matrix(p + "attn_output.weight", s.n_embd, s.n_embd, init);
    if (o.arch == "qwen2") {
      w.add_tensor(p + "attn_q.bias", GgmlType::kF32, {s.n_embd}, bias_bytes);
      w.add_tensor(p + "attn_k.bias", GgmlType::kF32, {kv_dim}, bias_bytes.first(kv_dim * 4));
      w.add_tensor(p + "attn_v.bias", GgmlType::kF32, {kv_dim}, bias_bytes.first(kv_dim * 4));
    }
    w.add_tensor(p + "ffn_norm.weight", GgmlType::kF32, {s.n_embd}, ones_bytes);
    add_matrix(p + "ffn_gate.weight", s.n_embd, s.n_ff, init);
    add_matrix(p + "ffn_up.weight", s.n_embd, s.n_ff, init);
    add_matrix(p + "ffn_down.weight", s.n_ff, s.n_embd, init);
  }
  return w.write(o.out_path);
}

}  // namespace spillway::engine
