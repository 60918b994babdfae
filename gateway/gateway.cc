#include "gateway/gateway.h"

#include <chrono>

#include "openai/api_error.h"
#include "openai/json_writer.h"
#include "openai/models_response.h"

#include "gateway/status_page.h"

namespace spillway::gateway {
namespace {

std::int64_t unix_now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Answers 401/403 (OpenAI error shape) and returns false unless the operator route may be
// served to this request.
bool admin_allowed(const net::HttpRequest& request, const net::AdminAuth& admin,
                   net::ResponseWriter& writer) {
  const Status allowed = net::check_admin(request, admin, net::AdminAccess::kRead);
  if (allowed.ok()) return true;
  const openai::ApiError e = openai::to_api_error(allowed.error(), std::nullopt);
  net::HttpResponse r = net::HttpResponse::json(e.http_status, openai::render_error_body(e));
  if (e.http_status == 401) r.headers.set("WWW-Authenticate", "Bearer");
  writer.respond(std::move(r));
  return false;
}

// The fields a tenant's forwarded requests carry (gateway.h), indexed as spec.tenants.
Result<std::vector<net::UpstreamRequest::Fields>> make_tenant_fields(const fleet::FleetSpec& spec) {
  std::vector<net::UpstreamRequest::Fields> out;
  out.reserve(spec.tenants.size());
  for (const fleet::TenantSpec& t : spec.tenants) {
    net::UpstreamRequest::Fields& f = out.emplace_back();
    Status s = f.add("X-Spillway-Tenant", t.name);
    if (s.ok()) s = f.add("X-Spillway-Priority", fleet::priority_name(t.priority));
    constexpr std::string_view kShared = "shared/";
    std::string_view ns = t.shared_cache ? std::string_view(t.cache_namespace) : "";
    if (ns.starts_with(kShared)) ns.remove_prefix(kShared.size());
    if (s.ok() && !ns.empty()) s = f.add("X-Spillway-Cache-Namespace", ns);
    if (!s.ok()) {
      return make_error(ErrorCode::kInvalidArgument, "tenant '{}' cannot be named to replicas: {}",
                        t.name, s.error().message());
    }
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<Gateway>> Gateway::create(fleet::FleetSpec spec, GatewayOptions options,
                                                 ReplicaSource& source, MetricsRegistry& metrics,
                                                 const Clock& clock) {
  SPW_TRY(options.validate());
  SPW_ASSIGN_OR_RETURN(auto policy,
                       fleet::make_routing_policy(spec.gateway.routing, options.routing));
  SPW_ASSIGN_OR_RETURN(auto tenant_fields, make_tenant_fields(spec));
  return std::unique_ptr<Gateway>(new Gateway(std::move(spec), std::move(options), source, metrics,
                                              clock, std::move(policy), std::move(tenant_fields)));
}

Gateway::Gateway(fleet::FleetSpec spec, GatewayOptions options, ReplicaSource& source,
                 MetricsRegistry& metrics, const Clock& clock,
                 std::unique_ptr<fleet::RoutingPolicy> policy,
                 std::vector<net::UpstreamRequest::Fields> tenant_fields)
    : spec_(std::move(spec)),
      options_(std::move(options)),
      source_(source),
      registry_(metrics),
      clock_(clock),
      created_unix_s_(unix_now_s()),
      directory_(spec_),
      tenant_fields_(std::move(tenant_fields)),
      quotas_(spec_, clock),
      policy_(std::move(policy)),
      metrics_(metrics),
      success_(std::make_unique<std::atomic<const GatewayMetrics::SuccessCounters*>[]>(
          spec_.tenants.size() * spec_.models.size())),
      inflight_(metrics.gauge("spillway_gateway_inflight_requests",
                              "Requests being forwarded to replicas.")),
      queued_(metrics.gauge("spillway_gateway_queued_requests",
                            "Requests waiting for a forwarding slot.")),
      decisions_(options_.decisions_kept),
      proxy_(options_, source_, *policy_, metrics_, decisions_, clock_),
      pool_(static_cast<std::size_t>(options_.max_inflight), options_.max_queued,
            options_.max_queue_wait, clock_) {}

Gateway::~Gateway() = default;

Status Gateway::add_api_key(std::string_view tenant, std::string stored_hash) {
  return directory_.add_key(tenant, std::move(stored_hash));
}

const fleet::TokenQuota* Gateway::quota(std::string_view tenant) const {
  return quotas_.find(tenant);
}

Status Gateway::add_routes(net::Router& router, net::AdminAuth admin) {
  SPW_TRY(
      router.add("POST", "/v1/chat/completions", [this](net::HttpRequest r, net::ResponseWriter w) {
        generate(Endpoint::kChat, std::move(r), std::move(w));
      }));
  SPW_TRY(router.add("POST", "/v1/completions", [this](net::HttpRequest r, net::ResponseWriter w) {
    generate(Endpoint::kCompletions, std::move(r), std::move(w));
  }));
  SPW_TRY(router.add("GET", "/v1/models", [this](net::HttpRequest r, net::ResponseWriter w) {
    models(r, std::move(w));
  }));
  SPW_TRY(router.add("GET", "/v1/models/{id}", [this](net::HttpRequest r, net::ResponseWriter w) {
    models(r, std::move(w));
  }));
  SPW_TRY(router.add("GET", "/health", [](net::HttpRequest, net::ResponseWriter w) {
    w.respond(net::HttpResponse::json(200, R"({"status":"ok"})"));
  }));
  SPW_TRY(router.add("GET", "/ready",
                     [this](net::HttpRequest, net::ResponseWriter w) { ready(std::move(w)); }));
  SPW_TRY(router.add("GET", "/metrics", [this](net::HttpRequest, net::ResponseWriter w) {
    w.respond(net::HttpResponse::with_body(200, registry_.render_prometheus(),
                                           "text/plain; version=0.0.4; charset=utf-8"));
  }));
  SPW_TRY(router.add("GET", "/v1/gateway/decisions",
                     [this, admin](net::HttpRequest r, net::ResponseWriter w) {
                       if (!admin_allowed(r, admin, w)) return;
                       w.respond(net::HttpResponse::json(200, decisions_.render_json()));
                     }));
  SPW_TRY(router.add("GET", "/v1/gateway/replicas",
                     [this, admin](net::HttpRequest r, net::ResponseWriter w) {
                       if (!admin_allowed(r, admin, w)) return;
                       replicas(std::move(w));
                     }));
  SPW_TRY(router.add("GET", "/", [](net::HttpRequest, net::ResponseWriter w) {
    w.respond(net::HttpResponse::with_body(200, std::string(status_page_html()),
                                           "text/html; charset=utf-8"));
  }));
  return Status();
}

void Gateway::fail(net::ResponseWriter& writer, std::string_view tenant, std::string_view model,
                   const Error& error, std::optional<std::string> param,
                   std::optional<std::string> code, std::optional<std::int64_t> retry_after_s) {
  openai::ApiError e =
      param ? openai::to_api_error(error, std::move(param)) : openai::to_api_error(error);
  if (code) e.code = std::move(code);
  net::HttpResponse r = net::HttpResponse::json(e.http_status, openai::render_error_body(e));
  if (retry_after_s) {
    r.headers.set("Retry-After", std::to_string(*retry_after_s));
  } else if (e.http_status == 503) {
    r.headers.set("Retry-After", std::to_string(options_.retry_after_s));
  }
  if (e.http_status == 401) r.headers.set("WWW-Authenticate", "Bearer");
  metrics_.request(tenant, model, e.http_status);
  writer.respond(std::move(r));
}

Result<const fleet::TenantSpec*> Gateway::authenticate(const net::HttpRequest& request) const {
  const auto header = request.headers.get("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (!header || header->size() <= kBearer.size() ||
      !net::iequals(header->substr(0, kBearer.size()), kBearer)) {
    return make_error(ErrorCode::kUnauthenticated,
                      "missing API key: send the header 'Authorization: Bearer <key>'");
  }
  // The directory was built from spec_, so its tenant index is an index into spec_.tenants.
  const auto tenant = directory_.find_index(header->substr(kBearer.size()));
  const fleet::TenantSpec* spec =
      tenant && *tenant < spec_.tenants.size() ? &spec_.tenants[*tenant] : nullptr;
  if (spec == nullptr) return make_error(ErrorCode::kUnauthenticated, "invalid API key");
  return spec;
}

void Gateway::models(const net::HttpRequest& request, net::ResponseWriter writer) {
  auto tenant = authenticate(request);
  if (!tenant.ok()) return fail(writer, "unauthenticated", "other", tenant.error());
  const fleet::TenantSpec& t = **tenant;
  std::vector<openai::ModelCard> cards;
  for (const fleet::ModelSpec& m : spec_.models) {
    if (t.allows_model(m.name)) cards.push_back({m.name, created_unix_s_, "spillway"});
  }
  if (const auto id = request.param("id")) {
    for (const openai::ModelCard& c : cards) {
      if (c.id == *id) {
        metrics_.request(t.name, c.id, 200);
        writer.respond(net::HttpResponse::json(200, openai::render_model(c)));
        return;
      }
    }
    return fail(writer, t.name, "other",
                make_error(ErrorCode::kNotFound,
                           "The model '{}' does not exist or you do not have access to it",
                           id->substr(0, 256)),
                "model", "model_not_found");
  }
  metrics_.request(t.name, "", 200);
  writer.respond(net::HttpResponse::json(200, openai::render_model_list(cards)));
}

void Gateway::ready(net::ResponseWriter writer) const {
  // Held in a variable: a range-for over *source_.replicas() would free its list before the
  // loop (the temporary ends with the range's expression).
  const ReplicaSnapshot replicas = source_.replicas();
  for (const fleet::ReplicaView& r : *replicas) {
    if (r.state == fleet::ReplicaState::kReady) {
      writer.respond(net::HttpResponse::json(200, R"({"status":"ready"})"));
      return;
    }
  }
  net::HttpResponse r = net::HttpResponse::json(503, R"({"status":"no ready replica"})");
  r.headers.set("Retry-After", std::to_string(options_.retry_after_s));
  writer.respond(std::move(r));
}

void Gateway::replicas(net::ResponseWriter writer) const {
  std::string out;
  openai::JsonWriter w(out);
  w.begin_object();
  w.field("object", "list");
  w.key("data");
  w.begin_array();
  const ReplicaSnapshot replicas = proxy_.replicas_with_overlay();  // Held: see ready().
  for (const fleet::ReplicaView& r : *replicas) {
    w.begin_object();
    w.field("id", r.id);
    w.field("model", r.model);
    w.field("provider", r.provider);
    w.field("region", r.region);
    w.field("pool", r.pool);
    w.field("url", r.url);
    w.field("state", fleet::replica_state_name(r.state));
    w.field("capacity", fleet::capacity_kind_name(r.capacity));
    w.field_integer("running", r.running);
    w.field_integer("waiting", r.waiting);
    w.key("kv_usage");
    w.number(r.kv_usage);
    w.field_integer("gateway_outstanding", proxy_.outstanding(r.id));
    w.end_object();
  }
  w.end_array();
  w.end_object();
  writer.respond(net::HttpResponse::json(200, std::move(out)));
}

}  // namespace spillway::gateway
