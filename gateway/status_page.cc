#include "gateway/status_page.h"

namespace spillway::gateway {
namespace {

constexpr std::string_view kPage = R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Spillway gateway</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2329; background: #f7f8fa; }
  h1 { font-size: 1.3rem; margin: 0 0 .2rem; }
  h2 { font-size: 1.05rem; margin: 1.4rem 0 .4rem; }
  .muted { color: #6a737d; }
  table { border-collapse: collapse; width: 100%; background: #fff; }
  th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #e3e6ea; white-space: nowrap; }
  th { background: #eef1f4; font-weight: 600; }
  .ready { color: #1a7f37; } .unhealthy, .stopped { color: #cf222e; }
  .draining, .starting { color: #9a6700; }
  .bar { display: inline-block; height: .6rem; background: #0969da; vertical-align: middle; }
  .providers { display: flex; gap: 1rem; flex-wrap: wrap; }
  .card { background: #fff; border: 1px solid #e3e6ea; border-radius: 6px; padding: .6rem .8rem; min-width: 14rem; }
  code { font-size: 12px; }
</style>
</head>
<body>
<h1>Spillway gateway</h1>
<div class="muted">Refreshes every 2 s. <span id="updated"></span> <span id="error"></span></div>

<h2>Providers and pools</h2>
<div id="providers" class="providers"><span class="muted">loading…</span></div>

<h2>Replicas</h2>
<table>
  <thead><tr><th>id</th><th>model</th><th>provider</th><th>region</th><th>pool</th><th>state</th>
  <th>running</th><th>waiting</th><th>KV usage</th><th>url</th></tr></thead>
  <tbody id="replicas"></tbody>
</table>

<h2>Recent routing decisions</h2>
<table>
  <thead><tr><th>time</th><th>tenant</th><th>model</th><th>priority</th><th>replica</th>
  <th>provider</th><th>pool</th><th>attempt</th><th>reason</th><th>load seen (w/r/kv)</th>
  <th>request</th></tr></thead>
  <tbody id="decisions"></tbody>
</table>

<script>
"use strict";
const el = (id) => document.getElementById(id);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g,
    (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
const rowsOf = (j) => Array.isArray(j) ? j : (j && (j.data || j.replicas || j.items)) || [];

async function getJson(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function renderProviders(fleet, replicas) {
  const box = el("providers");
  const providers = fleet && (fleet.providers || (fleet.data && fleet.data.providers));
  if (Array.isArray(providers) && providers.length) {
    box.innerHTML = providers.map((p) => {
      const pools = [];
      for (const r of (p.regions || [])) for (const pool of (r.pools || [])) pools.push([r, pool]);
      for (const pool of (p.pools || [])) pools.push([{name: pool.region}, pool]);
      return `<div class="card"><b>${esc(p.name)}</b>` + pools.map(([r, pool]) =>
        `<div>${esc(pool.name)} <span class="muted">${esc(r && r.name)} · ${esc(pool.gpu)} ×
         ${esc(pool.gpus)} · ${esc(pool.capacity)} · $${esc(pool.cost_per_gpu_hour)}/GPU-h
         ${pool.drained ? " · <b>drained</b>" : ""}</span></div>`).join("") + `</div>`;
    }).join("");
    return;
  }
  // No control plane: group the gateway's replicas by provider and pool.
  const by = {};
  for (const r of replicas) {
    by[r.provider] = by[r.provider] || {};
    by[r.provider][r.pool] = (by[r.provider][r.pool] || 0) + 1;
  }
  const names = Object.keys(by);
  box.innerHTML = names.length ? names.map((p) => `<div class="card"><b>${esc(p)}</b>` +
      Object.entries(by[p]).map(([pool, n]) =>
        `<div>${esc(pool)} <span class="muted">${n} replica(s)</span></div>`).join("") +
      `</div>`).join("") : '<span class="muted">no providers known</span>';
}

function renderReplicas(replicas) {
  el("replicas").innerHTML = replicas.map((r) => {
    const kv = Number(r.kv_usage || 0);
    return `<tr><td>${esc(r.id)}</td><td>${esc(r.model)}</td><td>${esc(r.provider)}</td>
      <td>${esc(r.region)}</td><td>${esc(r.pool)}</td>
      <td class="${esc(r.state)}">${esc(r.state)}</td><td>${esc(r.running ?? "")}</td>
      <td>${esc(r.waiting ?? "")}</td>
      <td><span class="bar" style="width:${Math.round(kv * 60)}px"></span> ${(kv * 100).toFixed(0)}%</td>
      <td><code>${esc(r.url)}</code></td></tr>`;
  }).join("") || '<tr><td colspan="10" class="muted">no replicas</td></tr>';
}

function renderDecisions(decisions) {
  el("decisions").innerHTML = decisions.slice(0, 50).map((d) =>
    `<tr><td>${esc(new Date(d.time_unix_ms).toLocaleTimeString())}</td><td>${esc(d.tenant)}</td>
     <td>${esc(d.model)}</td><td>${esc(d.priority)}</td><td>${esc(d.replica)}</td>
     <td>${esc(d.provider)}</td><td>${esc(d.pool)}</td><td>${esc(d.attempt)}</td>
     <td>${esc(d.reason)}</td>
     <td>${esc(d.waiting)}/${esc(d.running)}/${(Number(d.kv_usage) * 100).toFixed(0)}%</td>
     <td><code>${esc(d.request_id)}</code></td></tr>`).join("") ||
    '<tr><td colspan="11" class="muted">no requests routed yet</td></tr>';
}

async function refresh() {
  const problems = [];
  let fleet = null, replicas = [];
  try { fleet = await getJson("/v1/fleet"); } catch (e) { /* no control plane on this port */ }
  try { replicas = rowsOf(await getJson("/v1/fleet/replicas")); } catch (e) {
    try { replicas = rowsOf(await getJson("/v1/gateway/replicas")); } catch (e2) { problems.push(e2.message); }
  }
  renderProviders(fleet, replicas);
  renderReplicas(replicas);
  try { renderDecisions(rowsOf(await getJson("/v1/gateway/decisions"))); } catch (e) { problems.push(e.message); }
  el("updated").textContent = "Updated " + new Date().toLocaleTimeString() + ".";
  el("error").textContent = problems.join("; ");
}

refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
)html";

}  // namespace

std::string_view status_page_html() {
  return kPage;
}

}  // namespace spillway::gateway
