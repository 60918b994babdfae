// The gateway: one OpenAI-compatible endpoint in front of the whole fleet.
//
// Routes (add_routes):
//   POST /v1/chat/completions, POST /v1/completions
//       authenticate (Authorization: Bearer <key> → fleet::TenantDirectory → tenant; 401),
//       parse and validate as `spillway serve` does (openai::parse_*; the same 400/413/501
//       bodies), check the tenant may use the model (404 model_not_found, as OpenAI answers for
//       a model the key cannot see), reserve the request's worst case against the tenant's
//       fleet::TokenQuota (tenant_quotas.h; 429 rate_limit_error with Retry-After), wait for a
//       forwarding slot (proxy_pool.h; interactive first; 503 with Retry-After when the wait or
//       the waiting room overflows), then route, forward, relay and fail over (proxy.h). The
//       reservation is settled to the usage the replica reports, released when the request
//       failed before any output, and settled to an estimate (prompt bound + one token per
//       relayed event) when a stream broke or its client left after output began.
//   GET /v1/models, /v1/models/{id}   the fleet's models the tenant may use (authenticated)
//   GET /health                       200 while the process runs
//   GET /ready                        200 when some replica is ready, else 503
//   GET /metrics                      the registry (gateway_metrics.h and whatever else is in it)
//   GET /v1/gateway/decisions         the last routing decisions (decision_log.h)
//   GET /v1/gateway/replicas          the replicas as the routing policy sees them
//   GET /                             the status page (status_page.h)
// The /v1/gateway/* routes carry tenant names and fleet layout but no keys: they pass
// net::check_admin(kRead) with the AdminAuth given to add_routes (the admin key, or any
// loopback client, so the status page works when opened on the gateway's machine; 401/403 in
// the OpenAI error shape otherwise). /metrics and / stay open, meant for the operator's network.
//
// Replicas receive "Authorization: Bearer <internal_api_key>", X-Request-Id (the client's or
// a fresh one), X-Spillway-Tenant, X-Spillway-Priority and, for tenants with a shared cache,
// X-Spillway-Cache-Namespace.
//
// Threading: handlers run on the HTTP server's I/O threads; they authenticate, parse, reserve
// and take one of max_inflight forwarding slots (or wait for one), and the forwarding itself
// runs as a coroutine on the same I/O thread (proxy.h), so a request is never handed to
// another thread.
// Lifetime: stop the HTTP server whose router holds these routes before destroying the
// gateway: stopping it ends every forwarded request (their coroutines live on its event
// loops); the destructor answers requests still waiting for a slot with 503.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/status.h"

#include "net/admin_auth.h"
#include "net/router.h"

#include "fleet/fleet_spec.h"
#include "fleet/quota.h"
#include "fleet/routing.h"
#include "fleet/tenant_directory.h"
#include "gateway/decision_log.h"
#include "gateway/gateway_metrics.h"
#include "gateway/gateway_options.h"
#include "gateway/proxy.h"
#include "gateway/proxy_pool.h"
#include "gateway/replica_source.h"
#include "gateway/tenant_quotas.h"

namespace spillway::gateway {

class Gateway {
 public:
  // kInvalidArgument for invalid options or an unknown routing policy name in the fleet.
  // REQUIRES: source, metrics and clock outlive the gateway.
  [[nodiscard]] static Result<std::unique_ptr<Gateway>> create(fleet::FleetSpec spec,
                                                               GatewayOptions options,
                                                               ReplicaSource& source,
                                                               MetricsRegistry& metrics,
                                                               const Clock& clock);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // Adds the routes above; `admin` guards /v1/gateway/*. Errors only if a route is taken.
  [[nodiscard]] Status add_routes(net::Router& router, net::AdminAuth admin = {});

  // Adds a key for a tenant at run time (fleet::TenantDirectory::add_key).
  [[nodiscard]] Status add_api_key(std::string_view tenant, std::string stored_hash);

  // The tenant's budget (for tests and operators); nullptr for an unknown tenant.
  [[nodiscard]] const fleet::TokenQuota* quota(std::string_view tenant) const;
  [[nodiscard]] const DecisionLog& decisions() const { return decisions_; }
  [[nodiscard]] const fleet::FleetSpec& spec() const { return spec_; }

 private:
  using Endpoint = ProxyEndpoint;
  struct Admitted;

  Gateway(fleet::FleetSpec spec, GatewayOptions options, ReplicaSource& source,
          MetricsRegistry& metrics, const Clock& clock,
          std::unique_ptr<fleet::RoutingPolicy> policy,
          std::vector<net::UpstreamRequest::Fields> tenant_fields);

  [[nodiscard]] Result<const fleet::TenantSpec*> authenticate(
      const net::HttpRequest& request) const;
  void generate(Endpoint endpoint, net::HttpRequest request, net::ResponseWriter writer);
  // An admitted request's forwarding (Proxy::run, co_spawned on the client connection's
  // executor with the request's slot) ended, normally or by `failed`.
  void forwarded(ProxyCall& call, const std::exception_ptr& failed);
  void finish(const Admitted& admitted, const ProxyOutcome& outcome);
  // What a success of spec_.tenants[tenant] on spec_.models[model] adds to: looked up at the
  // pair's first success, then read without a lock or a lookup.
  const GatewayMetrics::SuccessCounters& success_counters(std::size_t tenant, std::size_t model);
  void models(const net::HttpRequest& request, net::ResponseWriter writer);
  void ready(net::ResponseWriter writer) const;
  void replicas(net::ResponseWriter writer) const;
  void fail(net::ResponseWriter& writer, std::string_view tenant, std::string_view model,
            const Error& error, std::optional<std::string> param = std::nullopt,
            std::optional<std::string> code = std::nullopt,
            std::optional<std::int64_t> retry_after_s = std::nullopt);

  const fleet::FleetSpec spec_;
  const GatewayOptions options_;
  ReplicaSource& source_;
  MetricsRegistry& registry_;
  const Clock& clock_;
  const std::int64_t created_unix_s_;
  fleet::TenantDirectory directory_;
  // Indexed as spec_.tenants: what each tenant's forwarded requests carry (ProxyCall).
  const std::vector<net::UpstreamRequest::Fields> tenant_fields_;
  TenantQuotas quotas_;
  std::unique_ptr<fleet::RoutingPolicy> policy_;
  GatewayMetrics metrics_;
  // By tenant index * models + model index; null until success_counters() makes the entry.
  const std::unique_ptr<std::atomic<const GatewayMetrics::SuccessCounters*>[]> success_;
  std::mutex success_mu_;
  std::vector<std::unique_ptr<GatewayMetrics::SuccessCounters>> success_made_;  // success_mu_.
  Gauge& inflight_;
  Gauge& queued_;
  DecisionLog decisions_;
  Proxy proxy_;
  ProxyPool pool_;  // Last: destroyed first, so no waiting request outlives what it uses.
};

}  // namespace spillway::gateway
