// The simulated gateway: tenant quotas (fleet::TokenQuota), routing (fleet::RoutingPolicy),
// replica refusals and failover, the admission queue (fleet::AdmissionQueue) and the
// accounting of each request's outcome. Part of SimRun (sim/sim_run.h).
#include <algorithm>

#include "sim/sim_run.h"

namespace spillway::sim::internal {

namespace {

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

std::uint64_t SimRun::prefix_key(const SimRequest& request) const {
  // The gateway keys on the prompt's first bytes: requests sharing a prefix share the key,
  // every other prompt has its own.
  if (request.prefix_id != 0) return splitmix(request.prefix_id);
  return splitmix(request.id ^ 0x5157'0000'0000'0000ull);
}

void SimRun::arrive(const SimRequest& request) {
  ++window_arrivals_;
  GroupStats& tenant = report_.tenants[request.tenant];
  GroupStats& priority = report_.priorities[static_cast<std::size_t>(request.priority)];
  ++report_.all.offered;
  ++tenant.offered;
  ++priority.offered;

  auto model = model_by_name_.find(request.model);
  if (model == model_by_name_.end()) {
    // The workload names a model the fleet does not serve (a gateway 404).
    ++report_.failed_unservable;
    ++report_.all.failed;
    ++tenant.failed;
    ++priority.failed;
    return;
  }
  Pending p;
  p.request = request;
  p.model = model->second;
  p.tenant = &tenant;
  if (auto q = quotas_.find(request.tenant); q != quotas_.end()) {
    p.quota = q->second.get();
    const std::int64_t worst =
        static_cast<std::int64_t>(request.prompt_tokens) + request.output_tokens;
    auto reservation = p.quota->reserve(worst);
    if (!reservation.ok()) {
      ++report_.rejected_quota;
      ++report_.all.rejected;
      ++tenant.rejected;
      ++priority.rejected;
      return;
    }
    p.reservation = *reservation;
  }
  const RequestId id = request.id;
  Pending& stored = pending_.emplace(id, std::move(p)).first->second;
  dispatch_or_queue(id, stored);
}

void SimRun::dispatch_or_queue(RequestId id, Pending& p) {
  switch (dispatch(p)) {
    case Dispatch::kSubmitted:
      break;
    case Dispatch::kNoReplica:
      enqueue(id);
      break;
    case Dispatch::kUnservable:
      fail(id, /*lost=*/false);
      break;
  }
}

SimRun::Dispatch SimRun::dispatch(Pending& p) {
  SimModel& m = models_[p.model];
  fleet::RouteRequest route;
  route.model = m.spec->name;
  route.tenant = p.request.tenant;
  route.cache_namespace = p.request.cache_namespace;
  route.prefix_key = prefix_key(p.request);
  route.priority = p.request.priority;
  for (std::int32_t attempt = 0; attempt < options_.max_attempts; ++attempt) {
    for (std::size_t slot = 0; slot < m.views.size(); ++slot)
      refresh_view(m.view_replica[slot]);
    auto chosen = policy_->choose(route, m.views, random_);
    if (!chosen.ok()) return Dispatch::kNoReplica;
    const std::size_t r = replica_by_id_.find(*chosen)->second;
    SimReplica& rep = replicas_[r];
    advance_replica(r, now_);
    const Status s = rep.impl->submit(p.request, now_);
    if (s.ok()) {
      p.replica = r;
      ++rep.inflight;
      schedule_replica(r);
      return Dispatch::kSubmitted;
    }
    if (s.error().code() != ErrorCode::kResourceExhausted) return Dispatch::kUnservable;
    ++report_.replica_refusals;
    route.exclude.push_back(*chosen);
  }
  return Dispatch::kNoReplica;
}

void SimRun::enqueue(RequestId id) {
  Pending& p = pending_.find(id)->second;
  SimModel& m = models_[p.model];
  fleet::AdmissionTicket ticket{id, p.request.priority, clock_.now()};
  auto pushed = m.queue->push(ticket);
  if (!pushed.ok()) {
    reject(id, /*by_quota=*/false);
    return;
  }
  p.queued = true;
  ++p.queue_epoch;
  events_.push(now_ + options_.max_queue_wait, EventKind::kQueueTimeout, id, p.queue_epoch);
  std::uint64_t queued = 0;
  for (const SimModel& model : models_)
    queued += model.queue->size();
  report_.queued_peak = std::max(report_.queued_peak, queued);
  if (*pushed) {
    const RequestId displaced = (*pushed)->id;
    pending_.find(displaced)->second.queued = false;
    reject(displaced, /*by_quota=*/false);
  }
}

void SimRun::drain_queue(std::size_t model) {
  SimModel& m = models_[model];
  m.queue_dirty = false;
  while (!m.queue->empty()) {
    const fleet::AdmissionTicket ticket = *m.queue->peek();
    Pending& p = pending_.find(ticket.id)->second;
    const Dispatch d = dispatch(p);
    if (d == Dispatch::kNoReplica) break;
    (void)m.queue->pop();
    p.queued = false;
    if (d == Dispatch::kUnservable) fail(ticket.id, /*lost=*/false);
  }
}

void SimRun::queue_timeout(RequestId id, std::uint64_t epoch) {
  auto it = pending_.find(id);
  if (it == pending_.end() || !it->second.queued || it->second.queue_epoch != epoch) return;
  (void)models_[it->second.model].queue->remove(id);
  it->second.queued = false;
  reject(id, /*by_quota=*/false);
}

void SimRun::reject(RequestId id, bool by_quota) {
  auto it = pending_.find(id);
  Pending& p = it->second;
  if (p.quota && p.reservation) (void)p.quota->release(*p.reservation);
  ++(by_quota ? report_.rejected_quota : report_.rejected_queue);
  ++report_.all.rejected;
  ++p.tenant->rejected;
  ++report_.priorities[static_cast<std::size_t>(p.request.priority)].rejected;
  pending_.erase(it);
}

void SimRun::fail(RequestId id, bool lost) {
  auto it = pending_.find(id);
  Pending& p = it->second;
  if (p.quota && p.reservation) (void)p.quota->release(*p.reservation);
  ++(lost ? report_.failed_lost : report_.failed_unservable);
  ++report_.all.failed;
  ++p.tenant->failed;
  ++report_.priorities[static_cast<std::size_t>(p.request.priority)].failed;
  pending_.erase(it);
}

void SimRun::requests_lost(std::size_t /*r*/, const std::vector<RequestId>& ids) {
  for (const RequestId id : ids) {
    auto it = pending_.find(id);
    if (it == pending_.end()) continue;
    Pending& p = it->second;
    p.replica.reset();
    if (p.first_token) {
      // The client already has part of the answer: the gateway cannot retry.
      fail(id, /*lost=*/true);
      continue;
    }
    ++report_.failovers;
    dispatch_or_queue(id, p);
  }
}

void SimRun::on_first_token(RequestId id, Nanos at) {
  auto it = pending_.find(id);
  if (it == pending_.end() || it->second.first_token) return;
  it->second.first_token = at;
}

void SimRun::on_finished(RequestId id, Nanos at) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Pending& p = it->second;
  if (!p.first_token) p.first_token = at;
  const std::size_t r = *p.replica;
  SimReplica& rep = replicas_[r];
  SimModel& m = models_[p.model];
  SimPool& pool = pools_[rep.pool];
  const Nanos rtt{static_cast<std::int64_t>(pool.spec->rtt_ms * 1e6)};
  const Nanos ttft = *p.first_token - p.request.arrival + rtt;
  const Nanos e2e = at - p.request.arrival + rtt;
  const bool has_tpot = p.request.output_tokens > 1;
  const Nanos tpot = has_tpot ? (at - *p.first_token) / (p.request.output_tokens - 1) : Nanos{0};
  const bool met = to_seconds(ttft) * 1e3 <= m.spec->slo_ttft_ms &&
                   (!has_tpot || to_seconds(tpot) * 1e3 <= m.spec->slo_tpot_ms);
  GroupStats& priority = report_.priorities[static_cast<std::size_t>(p.request.priority)];
  for (GroupStats* g : {&report_.all, p.tenant, &priority}) {
    ++g->finished;
    if (met) ++g->slo_met;
    g->ttft.add(ttft);
    g->e2e.add(e2e);
    if (has_tpot) g->tpot.add(tpot);
  }
  m.ttft_window.add(ttft);
  window_ttft_.add(ttft);
  ++window_finished_;
  ++pool.report.served;
  if (p.quota && p.reservation) {
    const std::int64_t used =
        static_cast<std::int64_t>(p.request.prompt_tokens) + p.request.output_tokens;
    (void)p.quota->settle(*p.reservation, used);
  }
  --rep.inflight;
  if (rep.phase == ReplicaPhase::kDraining && rep.inflight == 0) to_stop_.push_back(r);
  pending_.erase(it);
}

}  // namespace spillway::sim::internal
