#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace spillway::engine {

Status validate_sampling_params(const SamplingParams& p) {
  auto bad = [](const char* name, double v, const char* range) {
    return make_error(ErrorCode::kInvalidArgument, "{} = {} is out of range {}", name, v, range);
  };
  if (!(p.temperature >= 0.0f && p.temperature <= 100.0f))
    return bad("temperature", p.temperature, "[0, 100]");
  if (p.top_k < 0) return bad("top_k", p.top_k, "[0, n_vocab]");
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) return bad("top_p", p.top_p, "(0, 1]");
  if (!(p.min_p >= 0.0f && p.min_p < 1.0f)) return bad("min_p", p.min_p, "[0, 1)");
  if (!(p.repetition_penalty > 0.0f && p.repetition_penalty <= 10.0f)) {
    return bad("repetition_penalty", p.repetition_penalty, "(0, 10]");
  }
  if (!(p.presence_penalty >= -2.0f && p.presence_penalty <= 2.0f)) {
    return bad("presence_penalty", p.presence_penalty, "[-2, 2]");
  }
  if (!(p.frequency_penalty >= -2.0f && p.frequency_penalty <= 2.0f)) {
    return bad("frequency_penalty", p.frequency_penalty, "[-2, 2]");
  }
  if (p.top_logprobs < 0 || p.top_logprobs > 20)
    return bad("top_logprobs", p.top_logprobs, "[0, 20]");
  return Status();
}

Sampler::Sampler(const SamplingParams& params, std::int32_t n_vocab)
    : params_(params),
      n_vocab_(n_vocab),
      rng_(params.seed),
      seen_mask_(static_cast<std::size_t>(n_vocab), 0) {
  order_.reserve(static_cast<std::size_t>(n_vocab));
  probs_.reserve(static_cast<std::size_t>(n_vocab));
}

void Sampler::add_prompt(std::span<const std::int32_t> tokens) {
  for (std::int32_t t : tokens) {
    if (t < 0 || t >= n_vocab_) continue;
    if (!seen_mask_[static_cast<std::size_t>(t)]) {
      seen_mask_[static_cast<std::size_t>(t)] = 1;
      seen_.push_back(t);
    }
  }
}

void Sampler::apply_penalties(std::span<float> logits) const {
  if (params_.repetition_penalty != 1.0f) {
    for (std::int32_t t : seen_) {
      float& l = logits[static_cast<std::size_t>(t)];
      l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    }
  }
  if (params_.presence_penalty != 0.0f || params_.frequency_penalty != 0.0f) {
    for (const auto& [t, count] : output_counts_) {
      logits[static_cast<std::size_t>(t)] -=
          params_.presence_penalty + params_.frequency_penalty * static_cast<float>(count);
    }
  }
}

namespace {

// Appends the k most likely tokens of `logits` to `out` (see score_token).
void append_top(std::span<const float> logits, float log_z, std::int32_t k,
                std::vector<std::int32_t>& order, std::vector<TokenLogprob>& out) {
  if (k <= 0) return;
  // Most likely first; lower id first on ties, so results never depend on sort stability.
  const auto by_logit = [&](std::int32_t a, std::int32_t b) {
    const float la = logits[static_cast<std::size_t>(a)];
    const float lb = logits[static_cast<std::size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  order.resize(logits.size());
  std::iota(order.begin(), order.end(), 0);
  const auto top =
      static_cast<std::ptrdiff_t>(std::min<std::size_t>(static_cast<std::size_t>(k), order.size()));
  std::partial_sort(order.begin(), order.begin() + top, order.end(), by_logit);
  for (std::ptrdiff_t i = 0; i < top; ++i) {
    const std::int32_t t = order[static_cast<std::size_t>(i)];
    out.push_back({t, logits[static_cast<std::size_t>(t)] - log_z});
  }
}

}  // namespace

float log_partition(std::span<const float> logits) {
  const float max_raw = *std::max_element(logits.begin(), logits.end());
  double z = 0.0;
  for (float l : logits)
    z += std::exp(static_cast<double>(l - max_raw));
  return max_raw + static_cast<float>(std::log(z));
}

SampledToken score_token(std::span<const float> logits, std::int32_t token,
                         std::int32_t top_logprobs, std::vector<std::int32_t>& order) {
  SampledToken out;
  const float log_z = log_partition(logits);
  out.token = token;
  out.logprob = logits[static_cast<std::size_t>(token)] - log_z;
  append_top(logits, log_z, top_logprobs, order, out.top);
  return out;
}

SampledToken Sampler::sample(std::span<float> logits) {
  SampledToken out;
  // Most likely first; lower id first on ties, so results never depend on sort stability.
  const auto by_logit = [&](std::int32_t a, std::int32_t b) {
    const float la = logits[static_cast<std::size_t>(a)];
    const float lb = logits[static_cast<std::size_t>(b)];
    return la > lb || (la == lb && a < b);
  };
  // Raw log-softmax for reported log-probabilities.
  const float log_z = log_partition(logits);
  append_top(logits, log_z, params_.top_logprobs, order_, out.top);
  const bool penalized = params_.repetition_penalty != 1.0f || params_.presence_penalty != 0.0f ||
                         params_.frequency_penalty != 0.0f;
  if (penalized) raw_.assign(logits.begin(), logits.end());
  apply_penalties(logits);

  std::int32_t chosen = 0;
  if (params_.temperature == 0.0f) {
    chosen =
        static_cast<std::int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
  } else {
    // Candidates sorted by logit, most likely first.
    order_.resize(logits.size());
    std::iota(order_.begin(), order_.end(), 0);
    std::size_t keep = order_.size();
    if (params_.top_k > 0)
      keep = std::min<std::size_t>(keep, static_cast<std::size_t>(params_.top_k));
    if (keep < order_.size()) {
      std::partial_sort(order_.begin(), order_.begin() + static_cast<std::ptrdiff_t>(keep),
                        order_.end(), by_logit);
      order_.resize(keep);
    } else {
      std::sort(order_.begin(), order_.end(), by_logit);
    }
    const float inv_t = 1.0f / params_.temperature;
    const float top = logits[static_cast<std::size_t>(order_[0])] * inv_t;
    probs_.resize(order_.size());
    double sum = 0.0;
    for (std::size_t i = 0; i < order_.size(); ++i) {
      probs_[i] = std::exp(logits[static_cast<std::size_t>(order_[i])] * inv_t - top);
      sum += probs_[i];
    }
    // top-p: smallest prefix whose mass reaches top_p (at least one token).
    std::size_t n = order_.size();
    if (params_.top_p < 1.0f) {
      double cum = 0.0;
      for (std::size_t i = 0; i < order_.size(); ++i) {
        cum += probs_[i] / sum;
        if (cum >= params_.top_p) {
          n = i + 1;
          break;
        }
      }
    }
    // min-p: drop tokens below min_p times the most likely one's probability.
    if (params_.min_p > 0.0f) {
      const float threshold = params_.min_p * probs_[0];
      std::size_t m = 1;
      while (m < n && probs_[m] >= threshold)
        ++m;
      n = m;
    }
    double kept = 0.0;
    for (std::size_t i = 0; i < n; ++i)
      kept += probs_[i];
    const double u = rng_.uniform() * kept;
    double cum = 0.0;
    chosen = order_[n - 1];
    for (std::size_t i = 0; i < n; ++i) {
      cum += probs_[i];
      if (u < cum) {
        chosen = order_[i];
        break;
      }
    }
  }
  out.token = chosen;
  const float raw =
      penalized ? raw_[static_cast<std::size_t>(chosen)] : logits[static_cast<std::size_t>(chosen)];
  out.logprob = raw - log_z;
  ++output_counts_[chosen];
  if (!seen_mask_[static_cast<std::size_t>(chosen)]) {
    seen_mask_[static_cast<std::size_t>(chosen)] = 1;
    seen_.push_back(chosen);
  }
  return out;
}

}  // namespace spillway::engine
