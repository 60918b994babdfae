#include "engine/model.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "engine/cpu_features.h"
#include "engine/kernels.h"
#include "engine/quant.h"

namespace spillway::engine {
namespace {

std::string shape_str(const std::vector<std::int64_t>& shape) {
  return fmt::format("{{{}}}", fmt::join(shape, ", "));
}

Result<const GgufTensorInfo*> require(const Model::TensorLookup& find, const std::string& name) {
  const GgufTensorInfo* t = find(name);
  if (t == nullptr) return make_error(ErrorCode::kNotFound, "missing tensor '{}'", name);
  if (!can_dequantize(t->type)) {
    return make_error(ErrorCode::kUnimplemented, "tensor '{}' has type {}, which is not supported",
                      name, ggml_type_info(t->type).name);
  }
  return t;
}

Result<Matrix> matrix(const Model::TensorLookup& find, const std::string& name, std::int64_t cols,
                      std::int64_t rows) {
  SPW_ASSIGN_OR_RETURN(const GgufTensorInfo* t, require(find, name));
  if (t->shape.size() != 2 || t->shape[0] != cols || t->shape[1] != rows) {
    return make_error(ErrorCode::kInvalidArgument, "tensor '{}' has shape {}, expected {{{}, {}}}",
                      name, shape_str(t->shape), cols, rows);
  }
  const std::optional<std::size_t> row_bytes = ggml_row_bytes(t->type, cols);
  if (!row_bytes || *row_bytes * static_cast<std::size_t>(rows) != t->nbytes) {
    return make_error(ErrorCode::kDataLoss, "tensor '{}' size does not match its shape", name);
  }
  return Matrix{t->type, cols, rows, *row_bytes, t->data, name};
}

Result<std::vector<float>> vector_f32(const Model::TensorLookup& find, const std::string& name,
                                      std::int64_t n) {
  SPW_ASSIGN_OR_RETURN(const GgufTensorInfo* t, require(find, name));
  if (t->shape.size() != 1 || t->shape[0] != n) {
    return make_error(ErrorCode::kInvalidArgument, "tensor '{}' has shape {}, expected {{{}}}",
                      name, shape_str(t->shape), n);
  }
  std::vector<float> out(static_cast<std::size_t>(n));
  dequantize_row(t->type, t->data, out.data(), n);
  return out;
}

// Whether the file starts with the GGUF magic; errors when it cannot be opened at all.
Result<bool> has_gguf_magic(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    return make_error(errno == ENOENT ? ErrorCode::kNotFound : ErrorCode::kPermissionDenied,
                      "{}: cannot open: {}", path, std::strerror(errno));
  }
  char magic[4] = {};
  const bool ok = std::fread(magic, 1, 4, f) == 4 && std::memcmp(magic, "GGUF", 4) == 0;
  std::fclose(f);
  return ok;
}

}  // namespace

Status Model::bind_weights(const TensorLookup& find) {
  const ModelConfig& c = config_;
  const std::int64_t d = c.n_embd;
  SPW_ASSIGN_OR_RETURN(token_embd_, matrix(find, "token_embd.weight", d, c.n_vocab));
  SPW_ASSIGN_OR_RETURN(output_norm_, vector_f32(find, "output_norm.weight", d));
  if (find("output.weight") != nullptr) {
    SPW_ASSIGN_OR_RETURN(output_, matrix(find, "output.weight", d, c.n_vocab));
  } else {
    output_ = token_embd_;  // Tied embeddings.
  }
  if (find("rope_freqs.weight") != nullptr) {
    SPW_ASSIGN_OR_RETURN(rope_freq_factors_, vector_f32(find, "rope_freqs.weight", c.rope_dim / 2));
  }
  layers_.resize(static_cast<std::size_t>(c.n_layer));
  for (int i = 0; i < c.n_layer; ++i) {
    LayerWeights& l = layers_[static_cast<std::size_t>(i)];
    const std::string p = fmt::format("blk.{}.", i);
    SPW_ASSIGN_OR_RETURN(l.attn_norm, vector_f32(find, p + "attn_norm.weight", d));
    SPW_ASSIGN_OR_RETURN(l.wq, matrix(find, p + "attn_q.weight", d, c.q_dim()));
    SPW_ASSIGN_OR_RETURN(l.wk, matrix(find, p + "attn_k.weight", d, c.kv_dim()));
    SPW_ASSIGN_OR_RETURN(l.wv, matrix(find, p + "attn_v.weight", d, c.kv_dim()));
    SPW_ASSIGN_OR_RETURN(l.wo, matrix(find, p + "attn_output.weight", c.q_dim(), d));
    if (c.attention_bias) {
      SPW_ASSIGN_OR_RETURN(l.bq, vector_f32(find, p + "attn_q.bias", c.q_dim()));
      SPW_ASSIGN_OR_RETURN(l.bk, vector_f32(find, p + "attn_k.bias", c.kv_dim()));
      SPW_ASSIGN_OR_RETURN(l.bv, vector_f32(find, p + "attn_v.bias", c.kv_dim()));
    }
    SPW_ASSIGN_OR_RETURN(l.ffn_norm, vector_f32(find, p + "ffn_norm.weight", d));
    SPW_ASSIGN_OR_RETURN(l.ffn_gate, matrix(find, p + "ffn_gate.weight", d, c.n_ff));
    SPW_ASSIGN_OR_RETURN(l.ffn_up, matrix(find, p + "ffn_up.weight", d, c.n_ff));
    SPW_ASSIGN_OR_RETURN(l.ffn_down, matrix(find, p + "ffn_down.weight", c.n_ff, d));
  }
  return Status();
}

Result<std::unique_ptr<Model>> Model::load(const ModelLoadOptions& options) {
  std::unique_ptr<Model> m(new Model());
  m->path_ = options.path;
  auto fail = [&](const Error& e) { return e.with_context(options.path); };
  SPW_ASSIGN_OR_RETURN(const bool is_gguf, has_gguf_magic(options.path));
  if (is_gguf) {
    auto file = GgufFile::open(options.path);
    if (!file.ok()) return std::move(file).error();  // Already prefixed with the path.
    m->source_ = std::move(file).value();
    const GgufFile& f = std::get<GgufFile>(m->source_);
    auto config = model_config_from_gguf(f);
    if (!config.ok()) return fail(config.error());
    m->config_ = std::move(config).value();
    if (f.tensors().empty()) {
      return fail(Error(ErrorCode::kInvalidArgument,
                        "the file has no tensors (a vocabulary-only GGUF cannot generate)"));
    }
    if (Status s = m->attach_vocab(vocab_from_gguf(f)); !s.ok()) return fail(s.error());
    if (auto tmpl = f.get_string("tokenizer.chat_template"); tmpl.ok()) {
      m->chat_template_ = std::string(*tmpl);
    }
    if (Status s = m->bind_weights([&f](std::string_view n) { return f.find_tensor(n); });
        !s.ok()) {
      return fail(s.error());
    }
    if (options.repack_weights) {
      if (Status s = m->repack_weights(/*release_file_pages=*/true); !s.ok()) {
        return fail(s.error());
      }
    }
  } else {
    if (options.tokenizer_path.empty()) {
      return fail(Error(ErrorCode::kInvalidArgument,
                        "not a GGUF file; a llama2.c checkpoint also needs --tokenizer PATH"));
    }
    auto ckpt = Llama2cCheckpoint::open(options.path);
    if (!ckpt.ok()) return std::move(ckpt).error();
    m->source_ = std::move(ckpt).value();
    const Llama2cCheckpoint& c = std::get<Llama2cCheckpoint>(m->source_);
    auto config = model_config_from_llama2c(c.config());
    if (!config.ok()) return fail(config.error());
    m->config_ = std::move(config).value();
    if (Status s = m->attach_vocab(vocab_from_llama2c(options.tokenizer_path, m->config_.n_vocab));
        !s.ok()) {
      return s.error().with_context(options.tokenizer_path);
    }
    if (Status s = m->bind_weights([&c](std::string_view n) { return c.find_tensor(n); });
        !s.ok()) {
      return fail(s.error());
    }
    if (options.repack_weights) {
      if (Status s = m->repack_weights(/*release_file_pages=*/false); !s.ok()) {
        return fail(s.error());
      }
    }
  }
  return m;
}

Status Model::repack_weights(bool release_file_pages) {
  const KernelTable& kernels = kernel_table(selected_isa());
  std::vector<Matrix*> todo;
  for (LayerWeights& l : layers_) {
    for (Matrix* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down})
      todo.push_back(w);
  }
  todo.push_back(&output_);
  std::erase_if(todo, [&](const Matrix* w) {
    return !has_panel_layout(w->type) || panel_kernel(kernels, w->type) == nullptr;
  });
  if (todo.empty()) return Status();
  // One buffer for all panels (each matrix 64-byte aligned in it): one contiguous region to
  // stream, and no per-matrix rounding to huge pages.
  const auto aligned_size = [](const Matrix* w) {
    return (panel_layout_bytes(w->type, w->cols, w->rows) + 63) / 64 * 64;
  };
  std::size_t total = 0;
  for (const Matrix* w : todo)
    total += aligned_size(w);
  panels_ = PanelBuffer::allocate(total);
  if (panels_.empty()) {
    return make_error(ErrorCode::kResourceExhausted,
                      "cannot allocate {} bytes to repack the weights into panels", total);
  }
  // A tied output matrix is the embedding, whose rows the forward pass still reads.
  const bool tied = output_.data == token_embd_.data;
  const auto page = static_cast<std::uintptr_t>(::sysconf(_SC_PAGESIZE));
  std::byte* next = panels_.data();
  for (Matrix* w : todo) {
    repack_to_panels(w->type, w->data, w->cols, w->rows, next);
    w->panels = next;
    next += aligned_size(w);
    if (release_file_pages && !(w == &output_ && tied)) {
      // Drop the whole pages of the copied bytes from this process; a later read of `data`
      // (none in the forward pass) faults them back in from the file.
      const auto begin = reinterpret_cast<std::uintptr_t>(w->data);
      const std::uintptr_t first = (begin + page - 1) / page * page;
      const std::uintptr_t last =
          (begin + w->row_bytes * static_cast<std::size_t>(w->rows)) / page * page;
      if (first < last) {
        (void)::madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
      }
    }
  }
  return Status();
}

Status Model::attach_vocab(Result<Vocab> vocab) {
  if (!vocab.ok()) return vocab.error();
  if (vocab->size() != config_.n_vocab) {
    return make_error(ErrorCode::kInvalidArgument,
                      "tokenizer has {} tokens but the model's vocabulary size is {}",
                      vocab->size(), config_.n_vocab);
  }
  SPW_ASSIGN_OR_RETURN(tokenizer_, make_tokenizer(std::move(vocab).value()));
  return Status();
}

std::size_t Model::weight_bytes_per_token() const {
  std::size_t total = output_.row_bytes * static_cast<std::size_t>(output_.rows);
  for (const LayerWeights& l : layers_) {
    for (const Matrix* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_gate, &l.ffn_up, &l.ffn_down}) {
      total += w->row_bytes * static_cast<std::size_t>(w->rows);
    }
  }
  return total;
}

}  // namespace spillway::engine
