#include "engine/generator.h"

#include <algorithm>
#include <numeric>

#include "engine/detokenizer.h"
#include "engine/stop_strings.h"

namespace spillway::engine {

Result<std::unique_ptr<Generator>> Generator::create(const Model& model,
                                                     const GeneratorOptions& options) {
  const std::int32_t train = model.config().n_ctx_train;
  if (options.context < 0 || options.threads < 1 || options.threads > 512 ||
      options.max_batch_tokens < 1) {
    return make_error(ErrorCode::kInvalidArgument,
                      "generator needs context >= 0, threads in [1, 512], max_batch_tokens >= 1");
  }
  const std::int32_t context = options.context == 0 ? train : std::min(options.context, train);
  constexpr std::int32_t kBlockTokens = 16;
  SPW_ASSIGN_OR_RETURN(
      KvCache cache,
      KvCache::create(model.config(), {kBlockTokens, (context + kBlockTokens - 1) / kBlockTokens,
                                       options.kv_type}));
  return std::unique_ptr<Generator>(new Generator(model, context, std::move(cache), options.threads,
                                                  std::min(options.max_batch_tokens, context)));
}

Generator::Generator(const Model& model, std::int32_t context, KvCache cache, std::int32_t threads,
                     std::int32_t max_batch_tokens)
    : model_(model),
      context_(context),
      cache_(std::move(cache)),
      pool_(threads),
      forward_(model, cache_, pool_, max_batch_tokens),
      block_table_(static_cast<std::size_t>(cache_.num_blocks())),
      logits_(static_cast<std::size_t>(model.config().n_vocab)) {
  // One sequence owns the whole cache: block i holds positions [16 i, 16 i + 16).
  std::iota(block_table_.begin(), block_table_.end(), 0);
}

Result<GenerateResult> Generator::generate(const GenerateRequest& request,
                                           const std::function<void(std::string_view)>& on_text) {
  SPW_TRY(validate_sampling_params(request.sampling));
  if (request.max_tokens < 1) {
    return make_error(ErrorCode::kInvalidArgument, "max_tokens must be at least 1 (got {})",
                      request.max_tokens);
  }
  GenerateResult result;
  const Tokenizer& tok = model_.tokenizer();
  SPW_ASSIGN_OR_RETURN(result.prompt_tokens,
                       tok.encode(request.prompt, request.add_special, request.parse_special));
  if (result.prompt_tokens.empty()) {
    return make_error(ErrorCode::kInvalidArgument,
                      "the prompt is empty and the model adds no BOS token; nothing to start from");
  }
  const auto n_prompt = static_cast<std::int32_t>(result.prompt_tokens.size());
  if (n_prompt >= context_) {
    return make_error(ErrorCode::kOutOfRange,
                      "the prompt has {} tokens; the context holds {} (prompt plus at least one "
                      "generated token must fit)",
                      n_prompt, context_);
  }

  Sampler sampler(request.sampling, model_.config().n_vocab);
  sampler.add_prompt(result.prompt_tokens);
  const std::span<const std::int32_t> table(block_table_);
  const std::span<const std::int32_t> tables[] = {table};
  std::vector<BatchToken> batch;
  batch.reserve(static_cast<std::size_t>(forward_.max_batch_tokens()));

  // Prefill in chunks; logits only for the last prompt token.
  for (std::int32_t start = 0; start < n_prompt; start += forward_.max_batch_tokens()) {
    const std::int32_t end = std::min(n_prompt, start + forward_.max_batch_tokens());
    batch.clear();
    for (std::int32_t p = start; p < end; ++p) {
      batch.push_back({0, p, result.prompt_tokens[static_cast<std::size_t>(p)], p == n_prompt - 1});
    }
    SPW_TRY(forward_.run({batch, tables}, logits_));
  }

  // A continuation keeps its leading space (" there" after "Once upon a time,"); text generated
  // from an empty prompt loses it, as SentencePiece decoding does after BOS.
  DetokenizeOptions detok_options;
  detok_options.strip_leading_space = request.prompt.empty();
  StreamingDetokenizer detok(tok, detok_options);
  StopMatcher stops(request.stop);
  auto emit = [&](const std::string& s) {
    if (s.empty()) return;
    result.text += s;
    if (on_text) on_text(s);
  };
  const Vocab& vocab = model_.vocab();
  std::int32_t pos = n_prompt;
  for (;;) {
    SampledToken s = sampler.sample(logits_);
    result.tokens.push_back(s.token);
    result.samples.push_back(std::move(s));
    const std::int32_t token = result.tokens.back();
    if (vocab.is_eog(token)) {
      result.finish = FinishReason::kStop;
      break;
    }
    emit(stops.push(detok.push(token)));
    if (stops.stopped()) {
      result.finish = FinishReason::kStop;
      break;
    }
    if (static_cast<std::int32_t>(result.tokens.size()) >= request.max_tokens || pos >= context_) {
      result.finish = FinishReason::kLength;
      break;
    }
    const BatchToken next{0, pos, token, true};
    SPW_TRY(forward_.run({std::span(&next, 1), tables}, logits_));
    ++pos;
  }
  if (!stops.stopped()) emit(stops.push(detok.flush()) + stops.flush());
  return result;
}

}  // namespace spillway::engine
