// Gateway: the generation endpoints (authentication, validation, quota, admission) and the
// settlement of each request's reservation when it ends.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <variant>

#include <boost/asio/co_spawn.hpp>

#include "core/log.h"

#include "net/io_executor.h"
#include "openai/chat_request.h"
#include "openai/completion_request.h"

#include "gateway/gateway.h"
#include "gateway/openai_rewrite.h"

namespace spillway::gateway {

namespace asio = boost::asio;

namespace {

// What routing and quotas need of a parsed request, whichever endpoint it came to.
struct RequestSummary {
  std::string model;
  bool stream = false;
  bool include_usage = false;
};

std::string chat_prefix(const openai::ChatCompletionRequest& r) {
  std::string out;
  for (const openai::ChatMessage& m : r.messages) {
    if (out.size() >= fleet::kDefaultPrefixKeyBytes) break;
    out.append(openai::chat_role_name(m.role));
    out.push_back('\n');
    out.append(m.content);
    out.push_back('\n');
  }
  return out;
}

std::string completion_prefix(const openai::CompletionRequest& r) {
  const openai::CompletionPrompt& p = r.prompts.front();
  if (const auto* text = std::get_if<std::string>(&p)) return *text;
  std::string out;
  for (std::int32_t id : std::get<std::vector<std::int32_t>>(p)) {
    if (out.size() >= fleet::kDefaultPrefixKeyBytes) break;
    out.append(reinterpret_cast<const char*>(&id), sizeof id);
  }
  return out;
}

std::int64_t seconds_up(Nanos d) {
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(to_seconds(d))));
}

}  // namespace

struct Gateway::Admitted {
  std::string tenant;
  std::string model;
  fleet::TokenQuota* quota = nullptr;
  fleet::Reservation reservation;
  std::int64_t prompt_bound = 0;
  std::size_t tenant_index = 0;  // In spec_.tenants and spec_.models: success_counters().
  std::size_t model_index = 0;
};

void Gateway::generate(Endpoint endpoint, net::HttpRequest request, net::ResponseWriter writer) {
  auto tenant = authenticate(request);
  if (!tenant.ok()) return fail(writer, "unauthenticated", "other", tenant.error());
  const fleet::TenantSpec& t = **tenant;

  std::optional<openai::ChatCompletionRequest> chat;
  std::optional<openai::CompletionRequest> completion;
  RequestSummary summary;
  if (endpoint == Endpoint::kChat) {
    auto parsed = openai::parse_chat_completion_request(request.body, options_.limits);
    if (!parsed.ok()) return fail(writer, t.name, "other", parsed.error());
    chat = std::move(parsed).value();
    summary.model = chat->model;
    summary.stream = chat->stream.stream;
    summary.include_usage = chat->stream.include_usage;
  } else {
    auto parsed = openai::parse_completion_request(request.body, options_.limits);
    if (!parsed.ok()) return fail(writer, t.name, "other", parsed.error());
    completion = std::move(parsed).value();
    summary.model = completion->model;
    summary.stream = completion->stream.stream;
    summary.include_usage = completion->stream.include_usage;
  }

  const fleet::ModelSpec* model = spec_.find_model(summary.model);
  if (model == nullptr || !t.allows_model(model->name)) {
    return fail(
        writer, t.name, "other",
        make_error(ErrorCode::kNotFound,
                   "The model '{}' does not exist or you do not have access to it", summary.model),
        "model", "model_not_found");
  }

  const TokenAllowance allowance{options_.message_overhead_tokens,
                                 options_.request_overhead_tokens};
  const WorstCase worst = chat ? worst_case(*chat, model->context_tokens, allowance)
                               : worst_case(*completion, model->context_tokens, allowance);
  fleet::TokenQuota* quota = quotas_.find(t.name);
  if (quota == nullptr) {
    return fail(writer, t.name, model->name,
                make_error(ErrorCode::kInternal, "tenant '{}' has no quota", t.name));
  }
  Nanos retry_after{0};
  auto reservation = quota->reserve(worst.total_tokens, &retry_after);
  if (!reservation.ok()) {
    metrics_.quota_rejection(t.name);
    const fleet::QuotaLimits& limits = quota->limits();
    if (reservation.error().code() == ErrorCode::kOutOfRange) {
      // Retrying cannot help; OpenAI also answers 429 for a request larger than the limit.
      return fail(writer, t.name, model->name,
                  make_error(ErrorCode::kResourceExhausted,
                             "Request too large for tenant '{}': it may use up to {} tokens "
                             "(prompt bound plus max_tokens for each choice), the limit is {} "
                             "tokens per minute; lower max_tokens or n",
                             t.name, worst.total_tokens, limits.tokens_per_minute),
                  std::nullopt, "rate_limit_exceeded");
    }
    const std::int64_t wait_s = seconds_up(retry_after);
    return fail(writer, t.name, model->name,
                make_error(ErrorCode::kResourceExhausted,
                           "Rate limit reached for tenant '{}' (limits: {} tokens and {} "
                           "requests per minute, 0 = unlimited; this request may use up to {} "
                           "tokens). Please try again in {}s.",
                           t.name, limits.tokens_per_minute, limits.requests_per_minute,
                           worst.total_tokens, wait_s),
                std::nullopt, "rate_limit_exceeded", wait_s);
  }

  auto call = std::make_shared<ProxyCall>();
  call->endpoint = endpoint;
  call->stream = summary.stream;
  call->client_wants_usage = summary.include_usage;
  if (summary.stream && !summary.include_usage) {
    auto body = with_stream_usage(request.body, options_.limits.max_json_depth);
    if (!body.ok()) {
      (void)quota->release(*reservation);
      return fail(writer, t.name, model->name, body.error());
    }
    call->body = std::move(body).value();
  } else {
    call->body = std::move(request.body);
  }
  call->route.model = model->name;
  call->route.tenant = t.name;
  call->route.cache_namespace = t.cache_namespace;
  call->route.prefix_key =
      fleet::prefix_key_of(chat ? chat_prefix(*chat) : completion_prefix(*completion));
  call->route.priority = t.priority;
  call->request_id = request.request_id;
  call->tenant_fields = &tenant_fields_[static_cast<std::size_t>(&t - spec_.tenants.data())];
  call->writer = writer;

  auto admitted = std::make_shared<Admitted>();
  admitted->tenant = t.name;
  admitted->model = model->name;
  admitted->quota = quota;
  admitted->reservation = *reservation;
  admitted->prompt_bound = worst.prompt_tokens;
  admitted->tenant_index = static_cast<std::size_t>(&t - spec_.tenants.data());
  admitted->model_index = static_cast<std::size_t>(model - spec_.models.data());

  call->before_completion = [this, admitted](const ProxyOutcome& outcome) {
    finish(*admitted, outcome);
  };

  pool_.submit(
      t.priority,
      [this, call](ProxyPool::Slot slot) {
        queued_.set(static_cast<double>(pool_.queued()));
        // The forwarding continues on the client connection's own I/O thread: at once when
        // the slot was free (this is that thread, in the handler), else when this task's turn
        // comes (queued there by co_spawn, from the thread that released the slot).
        const auto executor = net::io_executor_of(call->writer);
        if (!executor) {  // The client left, or the server is stopping.
          ProxyOutcome gone;
          gone.status = 499;
          if (call->before_completion) call->before_completion(gone);
          return;
        }
        // The request leaves first (Proxy::start); then the coroutine that awaits the answer.
        Proxy::Start first = proxy_.start(*call, *executor);
        inflight_.add(1);
        auto done = [this, call, slot = std::move(slot)](std::exception_ptr failed,
                                                         const ProxyOutcome&) mutable {
          forwarded(*call, failed);
          slot.reset();
        };
        asio::co_spawn(*executor, proxy_.run(call, std::move(first)), std::move(done));
      },
      [this, call, admitted](const Error& why) {
        (void)admitted->quota->release(admitted->reservation);
        metrics_.queue_rejections.inc();
        queued_.set(static_cast<double>(pool_.queued()));
        const Error error = why.code() == ErrorCode::kUnavailable
                                ? why
                                : make_error(ErrorCode::kUnavailable, "{}", why.message());
        fail(call->writer, admitted->tenant, admitted->model, error);
      });
  queued_.set(static_cast<double>(pool_.queued()));
}

void Gateway::forwarded(ProxyCall& call, const std::exception_ptr& failed) {
  if (failed) {
    // The writer, dropped below unanswered, makes the connection answer 500.
    try {
      std::rethrow_exception(failed);
    } catch (const std::exception& e) {
      log_error("gateway forwarding failed",
                {kv("request_id", call.request_id), kv("error", e.what())});
    } catch (...) {
      log_error("gateway forwarding failed", {kv("request_id", call.request_id)});
    }
  }
  inflight_.add(-1);
  call.writer = net::ResponseWriter();  // Lets the exchange see the end at once.
}

const GatewayMetrics::SuccessCounters& Gateway::success_counters(std::size_t tenant,
                                                                 std::size_t model) {
  std::atomic<const GatewayMetrics::SuccessCounters*>& slot =
      success_[tenant * spec_.models.size() + model];
  if (const auto* made = slot.load(std::memory_order_acquire)) return *made;
  std::lock_guard lock(success_mu_);
  if (const auto* made = slot.load(std::memory_order_acquire)) return *made;
  const GatewayMetrics::SuccessCounters& made =
      *success_made_.emplace_back(std::make_unique<GatewayMetrics::SuccessCounters>(
          metrics_.success_counters(spec_.tenants[tenant].name, spec_.models[model].name)));
  slot.store(&made, std::memory_order_release);
  return made;
}

void Gateway::finish(const Admitted& admitted, const ProxyOutcome& outcome) {
  // A success's counters are kept per tenant and model (no lookup before the answer leaves).
  const GatewayMetrics::SuccessCounters* success = nullptr;
  if (outcome.status == 200) {
    success = &success_counters(admitted.tenant_index, admitted.model_index);
    success->requests->inc();
  } else {
    metrics_.request(admitted.tenant, admitted.model, outcome.status);
  }
  if (outcome.usage) {
    const std::int64_t prompt = outcome.usage->prompt_tokens;
    const std::int64_t completion = outcome.usage->completion_tokens;
    (void)admitted.quota->settle(admitted.reservation, prompt + completion);
    if (success != nullptr) {
      GatewayMetrics::add_tokens(*success, prompt, completion);
    } else {
      metrics_.tokens(admitted.tenant, prompt, completion);
    }
    return;
  }
  if (outcome.output_started) {
    // A stream that broke or lost its client: the replica's own count never came.
    (void)admitted.quota->settle(
        admitted.reservation,
        std::min(admitted.reservation.tokens, admitted.prompt_bound + outcome.events));
    return;
  }
  if (outcome.status == 200) {
    // An answer without usage (a replica that does not report it): keep the worst case.
    (void)admitted.quota->settle(admitted.reservation, admitted.reservation.tokens);
    return;
  }
  (void)admitted.quota->release(admitted.reservation);
}

}  // namespace spillway::gateway
