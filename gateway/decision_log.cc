#include "gateway/decision_log.h"

#include "openai/json_writer.h"

namespace spillway::gateway {

void DecisionLog::add(const RoutingDecision& decision) {
  add_with([&](RoutingDecision& slot) { slot = decision; });  // Reuses the strings' storage.
}

std::vector<RoutingDecision> DecisionLog::recent() const {
  std::lock_guard lock(mutex_);
  std::vector<RoutingDecision> out;
  out.reserve(decisions_.size());
  // Newest first: from the slot before next_ backwards, wrapping (next_ is 0 until full).
  for (std::size_t i = 0; i < decisions_.size(); ++i) {
    const std::size_t newest = (next_ + decisions_.size() - 1 - i) % decisions_.size();
    out.push_back(decisions_[newest]);
  }
  return out;
}

std::string DecisionLog::render_json() const {
  const std::vector<RoutingDecision> decisions = recent();
  std::string out;
  openai::JsonWriter w(out);
  w.begin_object();
  w.field("object", "list");
  w.key("data");
  w.begin_array();
  for (const RoutingDecision& d : decisions) {
    w.begin_object();
    w.field_integer("time_unix_ms", d.unix_ms);
    w.field("request_id", d.request_id);
    w.field("tenant", d.tenant);
    w.field("model", d.model);
    w.field("priority", d.priority);
    w.field("policy", d.policy);
    w.field("replica", d.replica);
    w.field("provider", d.provider);
    w.field("pool", d.pool);
    w.field("capacity", d.capacity);
    w.field_integer("attempt", d.attempt);
    w.field("reason", d.reason);
    w.field_integer("waiting", d.waiting);
    w.field_integer("running", d.running);
    w.key("kv_usage");
    w.number(d.kv_usage);
    w.end_object();
  }
  w.end_array();
  w.end_object();
  return out;
}

}  // namespace spillway::gateway
