#include "control/fleet_api.h"

#include <map>
#include <utility>

#include <boost/json.hpp>

#include "net/http_response.h"

namespace spillway::control {
namespace {

namespace json = boost::json;

net::HttpResponse error_response(const Error& error) {
  const HttpErrorMapping m = http_error_mapping(error.code());
  json::object body;
  body["error"] = json::object{{"message", error.message()},
                               {"type", std::string(m.openai_type)},
                               {"param", nullptr},
                               {"code", std::string(error_code_name(error.code()))}};
  return net::HttpResponse::json(m.http_status, json::serialize(body));
}

net::HttpHandler drain_handler(ControlPlane& control, net::AdminAuth admin, bool drain) {
  return [&control, admin = std::move(admin), drain](net::HttpRequest request,
                                                     net::ResponseWriter writer) {
    if (Status allowed = net::check_admin(request, admin, net::AdminAccess::kWrite);
        !allowed.ok()) {
      net::HttpResponse r = error_response(allowed.error());
      if (r.status == 401) r.headers.set("WWW-Authenticate", "Bearer");
      writer.respond(std::move(r));
      return;
    }
    const std::string pool(request.param("name").value_or(""));
    const Status s = drain ? control.drain_pool(pool) : control.undrain_pool(pool);
    if (!s.ok()) {
      writer.respond(error_response(s.error()));
      return;
    }
    writer.respond(net::HttpResponse::json(
        200, json::serialize(json::object{{"pool", pool}, {"drained", drain}})));
  };
}

}  // namespace

std::string render_fleet_json(const ControlPlane& control) {
  const fleet::FleetSpec& spec = control.fleet();
  const FleetStatus status = control.fleet_status();
  std::map<std::string, const PoolStatus*, std::less<>> pools;
  for (const PoolStatus& p : status.pools)
    pools[p.name] = &p;

  json::array providers;
  std::int64_t gpus_total = 0;
  std::int64_t gpus_used = 0;
  for (const fleet::ProviderSpec& provider : spec.providers) {
    json::array regions;
    for (const fleet::RegionSpec& region : provider.regions) {
      json::array pool_list;
      for (const fleet::PoolSpec& pool : region.pools) {
        const PoolStatus* p = pools.at(pool.name);
        json::array workloads;
        if (pool.inference) workloads.emplace_back("inference");
        if (pool.training) workloads.emplace_back("training");
        gpus_total += pool.gpus;
        gpus_used += p->gpus_used;
        pool_list.emplace_back(json::object{
            {"name", pool.name},
            {"gpu", pool.gpu},
            {"gpus", pool.gpus},
            {"gpus_used", p->gpus_used},
            {"gpus_free", pool.gpus - p->gpus_used},
            {"gpus_per_node", pool.gpus_per_node},
            {"capacity", std::string(fleet::capacity_kind_name(pool.capacity))},
            {"cost_per_gpu_hour", pool.cost_per_gpu_hour},
            {"cost_per_hour", static_cast<double>(p->gpus_used) * pool.cost_per_gpu_hour},
            {"workloads", std::move(workloads)},
            {"allow_spillover", pool.allow_spillover},
            {"local", pool.local.has_value()},
            {"drained", p->drained},
            {"replicas", p->replicas},
        });
      }
      regions.emplace_back(json::object{
          {"name", region.name}, {"rtt_ms", region.rtt_ms}, {"pools", std::move(pool_list)}});
    }
    providers.emplace_back(json::object{{"name", provider.name}, {"regions", std::move(regions)}});
  }

  json::array models;
  for (const ModelStatus& m : status.models) {
    const fleet::ModelSpec* spec_model = spec.find_model(m.name);
    models.emplace_back(json::object{{"name", m.name},
                                     {"desired_replicas", m.desired},
                                     {"actual_replicas", m.actual},
                                     {"ready_replicas", m.ready},
                                     {"min_replicas", spec_model->min_replicas},
                                     {"max_replicas", spec_model->max_replicas},
                                     {"gpus_per_replica", spec_model->gpus_per_replica}});
  }
  json::object body{{"providers", std::move(providers)},
                    {"models", std::move(models)},
                    {"gpus_total", gpus_total},
                    {"gpus_used", gpus_used},
                    {"cost_per_hour", status.cost_per_hour}};
  return json::serialize(body);
}

std::string render_replicas_json(const ControlPlane& control) {
  json::array data;
  for (const ReplicaInfo& info : control.replica_details()) {
    const fleet::ReplicaView& v = info.view;
    data.emplace_back(json::object{
        {"id", v.id},
        {"model", v.model},
        {"provider", v.provider},
        {"region", v.region},
        {"pool", v.pool},
        {"url", v.url},
        {"state", std::string(fleet::replica_state_name(v.state))},
        {"pid", static_cast<std::int64_t>(info.pid)},
        {"running", v.running},
        {"waiting", v.waiting},
        {"kv_usage", v.kv_usage},
        {"ttft_p50_s", v.ttft_p50_s},
        {"restarts", info.restarts},
        {"gpus", info.gpus},
        {"capacity", std::string(fleet::capacity_kind_name(v.capacity))},
        {"cost_per_gpu_hour", v.cost_per_gpu_hour},
        {"rtt_ms", v.rtt_ms},
    });
  }
  return json::serialize(json::object{{"object", "list"}, {"data", std::move(data)}});
}

Status add_fleet_routes(net::Router& router, ControlPlane& control, net::AdminAuth admin) {
  SPW_TRY(router.add("GET", "/v1/fleet", [&control](net::HttpRequest, net::ResponseWriter w) {
    w.respond(net::HttpResponse::json(200, render_fleet_json(control)));
  }));
  SPW_TRY(
      router.add("GET", "/v1/fleet/replicas", [&control](net::HttpRequest, net::ResponseWriter w) {
        w.respond(net::HttpResponse::json(200, render_replicas_json(control)));
      }));
  SPW_TRY(router.add("POST", "/v1/fleet/pools/{name}/drain", drain_handler(control, admin, true)));
  SPW_TRY(router.add("POST", "/v1/fleet/pools/{name}/undrain",
                     drain_handler(control, std::move(admin), false)));
  return Status();
}

}  // namespace spillway::control
