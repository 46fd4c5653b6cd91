// The Cachefleet console: pages rendered from the same-origin JSON facade (/console/api),
// which calls Cachefleet's public ElastiCache and CloudWatch APIs. Status is polled.
"use strict";

const POLL_MS = 2000;
const METRICS_POLL_MS = 10000;
const NODE_TYPES = ["cache.t4g.micro", "cache.t4g.small", "cache.t4g.medium", "cache.m7g.large", "cache.r7g.large"];

const state = {
  session: null,
  region: localStorage.getItem("cachefleet.region") || "",
  timers: [],
  page: 0, // bumped on every navigation: late answers for an old page are dropped
};

class ApiError extends Error {
  constructor(code, message) { super(message); this.code = code; }
}

// ---------------------------------------------------------------------- helpers
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "value") el.value = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

function statusBadge(status) {
  return h("span", { class: `status status-${status || "unknown"}`, "data-status": status || "" }, status || "unknown");
}

function dash(value) { return value === null || value === undefined || value === "" ? "–" : String(value); }

function credentials() {
  const raw = sessionStorage.getItem("cachefleet.credentials");
  return raw ? JSON.parse(raw) : null;
}

async function call(method, path, body) {
  const headers = { "X-Cachefleet-Console": "1" };
  const creds = credentials();
  if (creds) {
    headers["X-Cachefleet-Access-Key"] = creds.accessKey;
    headers["X-Cachefleet-Secret-Key"] = creds.secretKey;
  }
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const region = state.region || (state.session && state.session.region) || "";
  const url = `/console/api${path}${path.includes("?") ? "&" : "?"}region=${encodeURIComponent(region)}`;
  let response;
  try {
    response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError("ConnectionFailed", "Cachefleet did not answer: is `cachefleet up` still running?");
  }
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const error = data && data.error
      ? data.error
      : { code: `HTTP${response.status}`, message: `The console API answered HTTP ${response.status}.` };
    if (error.code === "MissingAuthenticationToken" || error.code === "InvalidClientTokenId" || error.code === "SignatureDoesNotMatch") {
      if (!state.session.dev_mode) showSignIn(`${error.message} (${error.code})`);
    }
    throw new ApiError(error.code, error.message);
  }
  return data;
}

function flash(kind, message, code) {
  const box = document.getElementById("flash");
  const item = h("div", { class: `flash ${kind}`, role: kind === "error" ? "alert" : "status" },
    h("span", { class: "message" }, message),
    code ? h("span", { class: "code" }, `(${code})`) : null,
    h("button", { class: "link", onclick: () => item.remove(), "aria-label": "dismiss", style: "color:inherit" }, "dismiss"));
  box.replaceChildren(item);
  if (kind === "notice") setTimeout(() => item.remove(), 8000);
}

function showError(error) {
  if (error instanceof ApiError) flash("error", error.message, error.code);
  else flash("error", "Something went wrong in the page; reload it.", null);
}

function every(ms, fn) {
  const page = state.page;
  const tick = async () => {
    if (page !== state.page) return;
    try { await fn(); } catch (e) { /* the page shows its own error state */ }
    if (page === state.page) state.timers.push(setTimeout(tick, ms));
  };
  state.timers.push(setTimeout(tick, ms));
}

async function withButton(button, action) {
  button.disabled = true;
  try { await action(); } catch (e) { showError(e); } finally { button.disabled = false; }
}

// ---------------------------------------------------------------------- sign-in (when credentials are checked)
function showSignIn(reason) {
  const app = document.getElementById("app");
  state.page += 1;
  const access = h("input", { id: "access-key", autocomplete: "username" });
  const secret = h("input", { id: "secret-key", type: "password", autocomplete: "current-password" });
  app.replaceChildren(
    h("h1", {}, "Sign in"),
    h("p", { class: reason ? "flash error" : "muted", id: "sign-in-reason" },
      reason || "This Cachefleet checks AWS credentials. They stay in this browser tab."),
    h("form", { class: "card grid", onsubmit: (event) => {
      event.preventDefault();
      sessionStorage.setItem("cachefleet.credentials", JSON.stringify({ accessKey: access.value, secretKey: secret.value }));
      document.getElementById("sign-out").hidden = false;
      route();
    } },
    h("label", { class: "field" }, "Access key ID", access),
    h("label", { class: "field" }, "Secret access key", secret),
    h("button", { class: "primary", type: "submit", id: "sign-in" }, "Sign in")));
}

// ---------------------------------------------------------------------- list page
async function listPage(app) {
  const page = state.page;
  const rows = h("tbody", { id: "resource-rows" });
  const table = h("table", { id: "resources" },
    h("thead", {}, h("tr", {}, ...["Name", "Kind", "Status", "Engine", "Node type", "Cluster mode", "Shards", "Nodes", "Endpoint"]
      .map((c) => h("th", { class: ["Shards", "Nodes"].includes(c) ? "num" : null }, c)))),
    rows);
  const form = await createForm();
  if (page !== state.page) return; // sent to the sign-in page meanwhile
  const groups = h("div", { id: "parameter-groups" }, h("p", { class: "muted" }, "Loading…"));
  const caches = h("div", { id: "serverless-caches" }, h("p", { class: "muted" }, "Loading…"));
  app.replaceChildren(
    h("h1", {}, "Replication groups and cache clusters"),
    table,
    h("h2", {}, "Serverless caches"),
    caches,
    h("h2", {}, "Create a replication group"),
    form,
    h("h2", {}, "Parameter groups"),
    groups);
  call("GET", "/parameter-groups").then((items) => renderParameterGroups(groups, items)).catch(showError);
  const refreshCaches = async () => renderServerlessList(caches, await call("GET", "/serverless"));
  refreshCaches().catch(showError);

  const refresh = async () => {
    const data = await call("GET", "/resources");
    if (!data.resources.length) {
      rows.replaceChildren(h("tr", {}, h("td", { colspan: 9, class: "muted" }, `No replication groups or cache clusters in ${data.region} yet.`)));
      return;
    }
    rows.replaceChildren(...data.resources.map((r) => h("tr", { "data-name": r.id },
      h("td", {}, h("a", { href: `#/r/${encodeURIComponent(r.id)}` }, r.id)),
      h("td", {}, r.kind === "group" ? "replication group" : "cache cluster"),
      h("td", { class: "status-cell" }, statusBadge(r.status)),
      h("td", {}, `${dash(r.engine)} ${r.engine_version || ""}`),
      h("td", {}, dash(r.node_type)),
      h("td", {}, r.cluster_mode ? "enabled" : "disabled"),
      h("td", { class: "num" }, r.kind === "group" ? r.shards : "–"),
      h("td", { class: "num" }, r.nodes),
      h("td", { class: "mono" }, dash(r.endpoint)))));
  };
  try { await refresh(); } catch (e) { showError(e); }
  every(POLL_MS, async () => { await refresh(); await refreshCaches(); });
}

function renderServerlessList(box, items) {
  if (!items.length) { box.replaceChildren(h("p", { class: "muted", id: "no-serverless" }, "No serverless caches.")); return; }
  box.replaceChildren(h("table", { id: "serverless-table" },
    h("thead", {}, h("tr", {}, ...["Name", "Status", "Engine", "Endpoint"].map((c) => h("th", {}, c)))),
    h("tbody", {}, ...items.map((c) => h("tr", { "data-name": c.name },
      h("td", {}, h("a", { href: `#/s/${encodeURIComponent(c.name)}` }, c.name)), h("td", {}, statusBadge(c.status)),
      h("td", {}, `${dash(c.engine)} ${c.version || ""}`), h("td", { class: "mono" }, dash(c.endpoint)))))));
}

// ---------------------------------------------------------------------- serverless cache page
function formatBytes(value) { return window.formatValue ? window.formatValue(value, "Bytes") : `${value} B`; }

function usageRow(id, label, used, limit, text) {
  const ratio = limit ? Math.min(1, (used || 0) / limit) : null;
  return h("tr", { "data-usage": id, "data-ratio": ratio === null ? "" : ratio.toFixed(4) },
    h("td", {}, label), h("td", { class: "usage-used" }, text.used),
    h("td", { class: "usage-limit" }, text.limit),
    h("td", {}, ratio === null ? h("span", { class: "muted" }, "no maximum")
      : h("progress", { max: "1", value: ratio.toFixed(4) }), ratio === null ? "" : ` ${(ratio * 100).toFixed(1)} %`));
}

function renderServerlessUsage(box, view) {
  const limits = view.limits, usage = view.usage;
  const gb = 1e9;
  const data = usageRow("data", "Data stored", usage.bytes_used, limits.data_max_gb ? limits.data_max_gb * gb : null, {
    used: usage.bytes_used === undefined || usage.bytes_used === null ? "–" : formatBytes(usage.bytes_used),
    limit: limits.data_max_gb ? `${limits.data_max_gb} GB` + (limits.data_min_gb ? ` (minimum ${limits.data_min_gb} GB)` : "")
      : (limits.data_min_gb ? `minimum ${limits.data_min_gb} GB` : "–"),
  });
  const ecpu = usageRow("ecpu", "ECPUs per second", usage.ecpu_per_second, limits.ecpu_max, {
    used: usage.ecpu_per_second === undefined || usage.ecpu_per_second === null ? "–" : usage.ecpu_per_second.toFixed(0),
    limit: limits.ecpu_max ? `${limits.ecpu_max} (measured, not enforced)` : "–",
  });
  const connections = h("tr", { "data-usage": "connections" }, h("td", {}, "Client connections"),
    h("td", { class: "usage-used" }, dash(usage.connections)), h("td", {}, "–"), h("td", {}, ""));
  box.replaceChildren(h("table", { id: "usage-table" },
    h("thead", {}, h("tr", {}, ...["", "Now", "Limit", "Used"].map((c) => h("th", {}, c)))),
    h("tbody", {}, data, ecpu, connections)));
}

function renderServerlessShards(box, view) {
  if (!view.shards.length) {
    box.replaceChildren(h("p", { class: "muted", id: "no-shards" },
      view.shards_error ? `The endpoint did not answer CLUSTER SHARDS: ${view.shards_error}` : "No shards serving yet."));
    return;
  }
  box.replaceChildren(h("table", { id: "serverless-shards" },
    h("thead", {}, h("tr", {}, ...["Slots", "Slot ranges", "Primary", "Replicas"].map((c) => h("th", {}, c)))),
    h("tbody", {}, ...view.shards.map((s) => h("tr", { "data-primary": s.primary || "" },
      h("td", { class: "num" }, s.slots), h("td", { class: "mono" }, s.ranges),
      h("td", { class: "mono" }, dash(s.primary)), h("td", { class: "mono" }, s.replicas.join(", ") || "–"))))));
}

async function serverlessPage(app, name) {
  const badge = h("span", { id: "status" });
  const summary = h("dl", { class: "summary card", id: "summary" });
  const usage = h("div", { id: "usage" });
  const shards = h("div", { id: "shards" });
  const metrics = h("div", { id: "metrics" }, h("div", { class: "metrics-note" }, "Loading metrics…"));
  const events = h("div", { id: "events" });
  app.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← All groups and clusters")),
    h("h1", {}, "Serverless cache ", h("span", { id: "cache-name" }, name), badge),
    summary,
    h("h2", {}, "Usage against limits"), usage,
    h("h2", {}, "Shards"), h("p", { class: "muted" }, "Cachefleet sizes the cache itself: shards are added and removed as its data and load need."), shards,
    h("h2", {}, "Metrics"), metrics,
    h("h2", {}, "Events (scaling decisions and their reasons)"), events);
  let gone = false;
  const refresh = async () => {
    if (gone) return;
    let view;
    try {
      view = await call("GET", `/serverless/${encodeURIComponent(name)}`);
    } catch (e) {
      if (e.code === "ServerlessCacheNotFoundFault") {
        gone = true;
        badge.replaceChildren(statusBadge("deleted"));
        summary.replaceChildren(h("dt", {}, "Status"), h("dd", { id: "gone" }, `${name} does not exist (any more).`));
        usage.replaceChildren(); shards.replaceChildren(); metrics.replaceChildren();
        return;
      }
      throw e;
    }
    badge.replaceChildren(statusBadge(view.status));
    const rows = [
      ["Engine", `${dash(view.engine)} ${view.full_engine_version || ""}`],
      ["Description", view.description],
      ["Endpoint", view.endpoint],
      ["Reader endpoint", view.reader_endpoint],
      ["Connect", view.endpoint ? `valkey-cli -c -h ${view.endpoint.split(":")[0]} -p ${view.endpoint.split(":")[1]}` : null],
      ["Shards", String(view.shards.length)],
      ["User group", view.user_group_id],
      ["Daily snapshot", view.snapshot_retention_limit ? `${view.daily_snapshot_time} UTC, kept ${view.snapshot_retention_limit} day(s)` : null],
      ["ARN", view.arn],
      ["Created", view.created ? new Date(view.created).toLocaleString() : null],
    ].filter(([, value]) => value);
    summary.replaceChildren(...rows.flatMap(([key, value]) => [h("dt", {}, key),
      h("dd", { class: ["Connect", "Endpoint", "Reader endpoint"].includes(key) ? "mono" : null, "data-field": key }, value)]));
    renderServerlessUsage(usage, view);
    renderServerlessShards(shards, view);
  };
  const refreshEvents = async () => renderEvents(events, await call("GET", `/resources/${encodeURIComponent(name)}/events?minutes=1440`));
  const refreshMetrics = async () => {
    if (gone) return;
    try {
      const data = await call("POST", `/serverless/${encodeURIComponent(name)}/metrics`, { minutes: 15, period: 10 });
      metrics.replaceChildren(h("div", { class: "charts" }, ...data.charts.map((chart) => window.renderChart(chart))));
    } catch (e) {
      metrics.replaceChildren(h("div", { class: "metrics-note", id: "metrics-unavailable" },
        h("strong", {}, "Metrics are not available: "), e.message, e.code ? ` (${e.code})` : ""));
    }
  };
  try { await refresh(); } catch (e) { showError(e); }
  refreshEvents().catch(showError);
  refreshMetrics();
  every(POLL_MS, async () => { await refresh(); await refreshEvents(); });
  every(METRICS_POLL_MS, refreshMetrics);
}

async function createForm() {
  let engines = [];
  try { engines = await call("GET", "/engines"); } catch (e) { if (state.session.dev_mode) showError(e); }
  // Valkey first: it is the default engine, as in `cachefleet create`.
  const engineNames = [...new Set(engines.map((e) => e.engine))].sort((a, b) => (a === "valkey" ? -1 : b === "valkey" ? 1 : a.localeCompare(b)));
  if (!engineNames.length) engineNames.push("valkey");
  const name = h("input", { id: "create-name", name: "name", required: true, placeholder: "my-cache", autocomplete: "off" });
  const engine = h("select", { id: "create-engine", name: "engine" }, ...engineNames.map((e) => h("option", { value: e }, e)));
  const version = h("select", { id: "create-version", name: "engine_version" });
  const fillVersions = () => {
    version.replaceChildren(h("option", { value: "" }, "newest"),
      ...engines.filter((e) => e.engine === engine.value).map((e) => h("option", { value: e.version }, e.version)));
  };
  engine.addEventListener("change", fillVersions);
  fillVersions();
  const nodeType = h("select", { id: "create-node-type", name: "node_type" }, ...NODE_TYPES.map((t) => h("option", { value: t }, t)));
  const replicas = h("input", { id: "create-replicas", name: "replicas", type: "number", min: 0, max: 5, value: "1" });
  const automatic = h("input", { id: "create-automatic-failover", type: "checkbox", checked: true });
  const multiAz = h("input", { id: "create-multi-az", type: "checkbox" });
  const clusterMode = h("input", { id: "create-cluster-mode", type: "checkbox" });
  const shards = h("input", { id: "create-shards", name: "shards", type: "number", min: 1, max: 500, value: "3", disabled: true });
  clusterMode.addEventListener("change", () => { shards.disabled = !clusterMode.checked; });
  const submit = h("button", { class: "primary", type: "submit", id: "create-submit" }, "Create");
  const form = h("form", { class: "card grid", id: "create-form", onsubmit: (event) => {
    event.preventDefault();
    withButton(submit, async () => {
      const body = {
        name: name.value.trim(), engine: engine.value, engine_version: version.value,
        node_type: nodeType.value, replicas: replicas.value,
        // Automatic failover needs a replica; a cluster-mode-enabled group always has it.
        automatic_failover: clusterMode.checked ? undefined : automatic.checked && Number(replicas.value) > 0,
        multi_az: multiAz.checked,
      };
      if (clusterMode.checked) body.shards = shards.value;
      const created = await call("POST", "/resources", body);
      flash("notice", `Creating replication group ${created.id}.`);
      location.hash = `#/r/${encodeURIComponent(created.id)}`;
    });
  } },
  h("label", { class: "field" }, "Name", name),
  h("label", { class: "field" }, "Engine", engine),
  h("label", { class: "field" }, "Engine version", version),
  h("label", { class: "field" }, "Node type", nodeType),
  h("label", { class: "field" }, "Replicas per shard", replicas),
  h("label", { class: "check" }, automatic, "Automatic failover"),
  h("label", { class: "check" }, multiAz, "Multi-AZ"),
  h("label", { class: "check" }, clusterMode, "Cluster mode (sharded)"),
  h("label", { class: "field" }, "Shards", shards),
  submit);
  return form;
}

function applyBadge(status) {
  return h("span", { class: `status apply-${status || "unknown"}`, "data-apply": status || "" }, status || "–");
}

function renderParameterGroups(box, items) {
  const custom = items.filter((g) => !g.default);
  const shown = [...custom, ...items.filter((g) => g.default)];
  box.replaceChildren(h("table", { id: "parameter-groups-table" },
    h("thead", {}, h("tr", {}, ...["Name", "Family", "Description", "Used by"].map((c) => h("th", {}, c)))),
    h("tbody", {}, ...shown.map((g) => h("tr", { "data-group": g.name, class: g.default ? "muted" : null },
      h("td", {}, h("a", { href: `#/p/${encodeURIComponent(g.name)}` }, g.name)),
      h("td", {}, g.family), h("td", {}, dash(g.description)),
      h("td", {}, g.users.length ? g.users.map((u) => u.cache_cluster_id).join(", ") : "–"))))));
}

// ---------------------------------------------------------------------- parameter group page
async function parameterGroupPage(app, name) {
  const summary = h("dl", { class: "summary card", id: "group-summary" });
  const users = h("div", { id: "users" });
  const table = h("div", { id: "parameters" }, h("p", { class: "muted" }, "Loading…"));
  const actions = h("div", { class: "card actions", id: "parameter-actions" });
  app.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← All groups and clusters")),
    h("h1", {}, "Parameter group ", h("span", { id: "group-name" }, name)),
    summary,
    h("h2", {}, "Used by"), users,
    h("h2", {}, "Parameters"), actions, table);
  const edited = new Map(); // parameter name -> value typed in, not saved yet
  let built = false;
  const refresh = async () => {
    const group = await call("GET", `/parameter-groups/${encodeURIComponent(name)}`);
    summary.replaceChildren(...[
      ["Family", group.family], ["Description", group.description],
      ["Kind", group.default ? "default (cannot be changed)" : "custom"], ["ARN", group.arn],
    ].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, dash(v))]));
    renderUsers(users, group.users);
    if (!built || !edited.size) renderParameters(table, group, edited);
    if (!built) { renderParameterActions(actions, group, edited, refresh); built = true; }
  };
  try { await refresh(); } catch (e) { showError(e); table.replaceChildren(h("p", { class: "muted", id: "group-missing" }, e.message)); return; }
  every(POLL_MS, refresh);
}

function renderUsers(box, users) {
  if (!users.length) { box.replaceChildren(h("p", { class: "muted", id: "no-users" }, "No cache cluster uses this group.")); return; }
  box.replaceChildren(h("table", { id: "users-table" },
    h("thead", {}, h("tr", {}, ...["Cache cluster", "Replication group", "Parameters", "Nodes to reboot"].map((c) => h("th", {}, c)))),
    h("tbody", {}, ...users.map((u) => h("tr", { "data-user": u.cache_cluster_id },
      h("td", {}, u.cache_cluster_id),
      h("td", {}, u.replication_group_id ? h("a", { href: `#/r/${encodeURIComponent(u.replication_group_id)}` }, u.replication_group_id) : "–"),
      h("td", {}, applyBadge(u.status)), h("td", {}, u.nodes_to_reboot.join(", ") || "–"))))));
}

function renderParameters(box, group, edited) {
  const editable = (p) => !group.default && p.modifiable;
  box.replaceChildren(h("table", { id: "parameters-table" },
    h("thead", {}, h("tr", {}, ...["Parameter", "Value", "Source", "Change type", "Allowed values"].map((c) => h("th", {}, c)))),
    h("tbody", {}, ...group.parameters.map((p) => {
      let value = h("span", { class: "mono value" }, p.value === "" ? '""' : p.value);
      if (editable(p)) {
        value = h("input", { class: "mono value", "data-input": p.name, value: edited.has(p.name) ? edited.get(p.name) : p.value,
          oninput: (event) => { if (event.target.value === p.value) edited.delete(p.name); else edited.set(p.name, event.target.value); } });
      }
      return h("tr", { "data-parameter": p.name, "data-source": p.source, title: p.description },
        h("td", { class: p.source === "user" ? "strong" : null }, p.name), h("td", {}, value),
        h("td", {}, p.source), h("td", { class: p.change_type === "requires-reboot" ? "reboot" : null }, p.change_type),
        h("td", { class: "muted" }, dash(p.allowed_values)));
    }))));
}

function renderParameterActions(actions, group, edited, refresh) {
  if (group.default) { actions.replaceChildren(h("span", { class: "muted" }, "Default parameter groups cannot be changed: create your own.")); return; }
  const name = group.name;
  const save = h("button", { class: "primary", id: "parameters-save", onclick: () => withButton(save, async () => {
    if (!edited.size) { flash("notice", "Nothing changed."); return; }
    const result = await call("POST", `/parameter-groups/${encodeURIComponent(name)}/parameters`, { values: Object.fromEntries(edited) });
    edited.clear();
    flash("notice", result.messages.join(" "));
    await refresh();
  }) }, "Save changes");
  const resetAll = h("button", { id: "parameters-reset-all", onclick: () => withButton(resetAll, async () => {
    const result = await call("POST", `/parameter-groups/${encodeURIComponent(name)}/reset`, { names: [] });
    edited.clear();
    flash("notice", result.messages.join(" "));
    await refresh();
  }) }, "Reset every parameter");
  actions.replaceChildren(h("div", { class: "group" }, save, resetAll,
    h("span", { class: "muted" }, "Dynamic parameters reach every node at once; requires-reboot ones wait for each node's reboot.")));
}

// ---------------------------------------------------------------------- resource page
async function resourcePage(app, name) {
  const title = h("span", {}, name);
  const badge = h("span", { id: "status" });
  const summary = h("dl", { class: "summary card", id: "summary" });
  const actions = h("div", { class: "card actions", id: "actions" });
  const shards = h("div", { id: "shards" });
  const nodes = h("div", { id: "nodes" });
  const metrics = h("div", { id: "metrics" }, h("div", { class: "metrics-note" }, "Loading metrics…"));
  const events = h("div", { id: "events" });
  const pending = h("div", { id: "pending" });
  const snapshots = h("div", { id: "snapshots" });
  const snapshotForm = snapshotActions(name, () => refreshSnapshots());
  app.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← All groups and clusters")),
    h("h1", {}, title, badge),
    summary, actions,
    h("h2", {}, "Pending changes"), pending,
    h("h2", {}, "Shards"), shards,
    h("h2", {}, "Nodes"), nodes,
    h("h2", {}, "Snapshots"), snapshotForm, snapshots,
    h("h2", {}, "Metrics"), metrics,
    h("h2", {}, "Events"), events);

  let built = false;
  let gone = false;
  const refresh = async () => {
    if (gone) return;
    let view;
    try {
      view = await call("GET", `/resources/${encodeURIComponent(name)}`);
    } catch (e) {
      if (e.code === "NotFound") {
        gone = true;
        badge.replaceChildren(statusBadge("deleted"));
        summary.replaceChildren(h("dt", {}, "Status"), h("dd", { id: "gone" }, `${name} does not exist (any more).`));
        actions.replaceChildren(h("a", { href: "#/" }, "Back to the list"));
        shards.replaceChildren(); nodes.replaceChildren(); metrics.replaceChildren();
        await refreshEvents();
        return;
      }
      throw e;
    }
    badge.replaceChildren(statusBadge(view.status));
    renderSummary(summary, view);
    if (!built) { renderActions(actions, view); built = true; } else updateActions(actions, view);
    renderPending(pending, view);
    renderShards(shards, view);
    renderNodes(nodes, view);
  };
  const refreshEvents = async () => {
    const items = await call("GET", `/resources/${encodeURIComponent(name)}/events?minutes=1440`);
    renderEvents(events, items);
  };
  const refreshSnapshots = async () => {
    renderSnapshots(snapshots, await call("GET", `/resources/${encodeURIComponent(name)}/snapshots`));
  };
  let metricsPause = 0;
  const refreshMetrics = async () => {
    if (gone) return;
    if (metricsPause > 0) { metricsPause -= 1; return; }
    try {
      const data = await call("POST", `/resources/${encodeURIComponent(name)}/metrics`, { minutes: 15, period: 10 });
      metrics.replaceChildren(h("div", { class: "charts" }, ...data.charts.map((chart) => window.renderChart(chart))));
    } catch (e) {
      // The CloudWatch API answers here once it is served; until then its error is shown in place
      // (and asked again only every minute when the action is not served at all).
      if (e.code === "InvalidAction") metricsPause = 5;
      metrics.replaceChildren(h("div", { class: "metrics-note", id: "metrics-unavailable" },
        h("strong", {}, "Metrics are not available: "), e.message, e.code ? ` (${e.code})` : ""));
    }
  };
  try { await refresh(); } catch (e) { showError(e); }
  refreshEvents().catch(showError);
  refreshSnapshots().catch(showError);
  refreshMetrics();
  every(POLL_MS, async () => { await refresh(); await refreshEvents(); await refreshSnapshots(); });
  every(METRICS_POLL_MS, refreshMetrics);
}

function connectCommand(view) {
  let target = null, cluster = false;
  if (view.cluster_mode && view.configuration_endpoint) { target = view.configuration_endpoint; cluster = true; }
  else if (view.kind === "group" && view.shards.length) target = view.shards[0].primary_endpoint;
  else if (view.nodes.length) target = view.nodes[0].endpoint;
  if (!target) return null;
  const i = target.lastIndexOf(":");
  let port = Number(target.slice(i + 1));
  // In preferred mode plain text keeps the port and TLS is served on the next one.
  if (view.tls_mode === "preferred") port = port < 65535 ? port + 1 : port - 1;
  const flags = [];
  if (cluster) flags.push("-c");
  if (view.tls) flags.push("--tls", "--cacert", "ca.pem");
  if (view.user_group_ids && view.user_group_ids.length) flags.push("--user", "<user>", "--askpass");
  else if (view.auth_token_enabled) flags.push("--askpass");
  const cli = view.tls ? "redis-cli" : "valkey-cli";
  return `${cli} -h ${target.slice(0, i)} -p ${port}${flags.length ? " " + flags.join(" ") : ""}`;
}

function securityRows(view) {
  const pending = view.locks_pending || {};
  let tls = { required: "required (TLS only)", preferred: "preferred (TLS on port + 1, plain text on the port)" }[view.tls_mode] || "disabled";
  if (pending.tls_mode) tls += ` → ${pending.tls_mode} (applying)`;
  let auth = view.auth_token_enabled ? "enabled" : "disabled";
  if (view.auth_token_last_modified) auth += ` (last changed ${new Date(view.auth_token_last_modified).toLocaleString()})`;
  if (pending.auth_token) auth += `, ${pending.auth_token}`;
  let groups = (view.user_group_ids || []).join(", ") || "none";
  if (pending.user_groups) groups += ` (applying: ${[...pending.user_groups.add.map((g) => "+" + g), ...pending.user_groups.remove.map((g) => "-" + g)].join(", ")})`;
  return [["In-transit encryption", tls], ["AUTH token", auth], ["User groups (RBAC)", groups]];
}

function renderPending(box, view) {
  const items = view.pending || [];
  if (!items.length) { box.replaceChildren(h("p", { class: "muted", id: "no-pending" }, "None: everything asked for is applied.")); return; }
  box.replaceChildren(h("table", { id: "pending-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Change"), h("th", {}, "Value"), h("th", {}, "Where"))),
    h("tbody", {}, ...items.map((item) => h("tr", { "data-pending": item.what, "data-where": item.where || "" },
      h("td", {}, item.what), h("td", { class: "mono" }, String(item.value)), h("td", {}, dash(item.where)))))));
}

function renderSummary(summary, view) {
  const rows = [
    ["Kind", view.kind === "group" ? "Replication group" : "Cache cluster"],
    ["Description", view.description],
    ["Engine", `${dash(view.engine)} ${view.engine_version || ""}`],
    ["Node type", view.node_type],
    ["Cluster mode", view.cluster_mode ? "enabled" : "disabled"],
    ["Automatic failover", view.kind === "group" ? view.automatic_failover : null],
    ["Multi-AZ", view.kind === "group" ? view.multi_az : null],
    ...securityRows(view),
    ["Configuration endpoint", view.configuration_endpoint],
    ["Replication group", view.replication_group_id],
    ["Global datastore", view.global_datastore ? h("span", {}, h("a", { href: `#/g/${encodeURIComponent(view.global_datastore.id)}`, id: "global-datastore-link" },
      view.global_datastore.id), ` (${view.global_datastore.role})`) : null],
    ["Parameter group", view.parameter_group ? h("a", { href: `#/p/${encodeURIComponent(view.parameter_group)}`, id: "parameter-group-link" }, view.parameter_group) : null],
    ["Engine upgrade", view.upgrade ? h("span", { id: "upgrade-progress", "data-state": view.upgrade.state },
      h("progress", { max: String(view.upgrade.total), value: String(view.upgrade.done) }),
      ` to ${view.upgrade.target}: ${view.upgrade.done}/${view.upgrade.total} nodes (${view.upgrade.state})`) : null],
    ["Connect", connectCommand(view)],
    ["ARN", view.arn],
    ["Created", view.created ? new Date(view.created).toLocaleString() : null],
  ].filter(([, value]) => value);
  summary.replaceChildren(...rows.flatMap(([key, value]) => [h("dt", {}, key),
    h("dd", { class: key === "Connect" ? "mono" : null, "data-field": key }, value)]));
}

function renderActions(actions, view) {
  const name = view.id;
  const done = (result) => flash("notice", (result.messages || []).join(" ") || "Done.");
  const parts = [];
  if (view.kind === "group") {
    const replicasNow = view.shards.length ? view.shards[0].nodes.length - 1 : 0;
    const replicas = h("input", { id: "scale-replicas", type: "number", min: 0, max: 5, value: String(replicasNow) });
    const replicasButton = h("button", { id: "scale-replicas-submit", onclick: () => withButton(replicasButton, async () =>
      done(await call("POST", `/resources/${encodeURIComponent(name)}/scale`, { replicas: replicas.value }))) }, "Set replicas");
    const shards = h("input", { id: "scale-shards", type: "number", min: 1, max: 500, value: String(view.shards.length || 1) });
    const shardsButton = h("button", { id: "scale-shards-submit", onclick: () => withButton(shardsButton, async () =>
      done(await call("POST", `/resources/${encodeURIComponent(name)}/scale`, { shards: shards.value }))) }, "Set shards");
    const shard = h("select", { id: "failover-shard" }, ...view.shards.map((s) => h("option", { value: s.id }, `shard ${s.id}`)));
    const failoverButton = h("button", { id: "failover-submit", onclick: () => withButton(failoverButton, async () =>
      done(await call("POST", `/resources/${encodeURIComponent(name)}/failover`, { shard: shard.value }))) }, "Fail over");
    parts.push(
      h("div", { class: "group" }, h("label", { class: "field" }, "Replicas per shard", replicas), replicasButton),
      h("div", { class: "group" }, h("label", { class: "field" }, "Shards", shards), shardsButton),
      h("div", { class: "group" }, h("label", { class: "field" }, "Test a failover", shard), failoverButton));
  }
  const confirmBox = h("span", { id: "delete-confirm", class: "confirm", hidden: true });
  const deleteButton = h("button", { class: "danger", id: "delete", onclick: () => {
    const yes = h("button", { class: "danger", id: "delete-confirm-yes", onclick: () => withButton(yes, async () => {
      const result = await call("DELETE", `/resources/${encodeURIComponent(name)}`);
      confirmBox.hidden = true;
      flash("notice", `Deleting ${name} (${result.status}).`);
    }) }, "Yes, delete");
    const no = h("button", { onclick: () => { confirmBox.hidden = true; } }, "Cancel");
    confirmBox.replaceChildren(`Delete ${name} and all its data?`, yes, no);
    confirmBox.hidden = false;
  } }, "Delete");
  parts.push(h("div", { class: "group" }, deleteButton, confirmBox));
  if (view.kind === "group" && !view.cluster_mode) {
    parts.push(h("div", { class: "group" }, h("a", { href: `#/m/${encodeURIComponent(name)}`, id: "migrate-link" }, "Migrate data from a self-hosted node…")));
  }
  actions.replaceChildren(...parts);
}

function updateActions(actions, view) {
  const select = actions.querySelector("#failover-shard");
  if (select && select.options.length !== view.shards.length) {
    select.replaceChildren(...view.shards.map((s) => h("option", { value: s.id }, `shard ${s.id}`)));
  }
}

function renderShards(box, view) {
  if (!view.shards.length) {
    box.replaceChildren(h("p", { class: "muted" }, view.kind === "group" ? "No shards yet." : "A standalone cache cluster has one node and no shards."));
    return;
  }
  box.replaceChildren(h("table", { id: "shards-table" },
    h("thead", {}, h("tr", {}, ...["Shard", "Status", "Slots", "Primary endpoint", "Reader endpoint", "Nodes"].map((c) => h("th", {}, c)))),
    h("tbody", {}, ...view.shards.map((s) => h("tr", { "data-shard": s.id },
      h("td", {}, s.id), h("td", {}, statusBadge(s.status)), h("td", {}, dash(s.slots)),
      h("td", { class: "mono primary-endpoint" }, dash(s.primary_endpoint)),
      h("td", { class: "mono reader-endpoint" }, dash(s.reader_endpoint)),
      h("td", { class: "num" }, s.nodes.length))))));
}

function renderNodes(box, view) {
  box.replaceChildren(h("table", { id: "nodes-table" },
    h("thead", {}, h("tr", {}, ...["Cache cluster", "Node", "Shard", "Role", "Status", "Endpoint", "Zone", "Engine version", "Parameters"].map((c) => h("th", {}, c)))),
    h("tbody", {}, ...view.nodes.map((n) => h("tr", { "data-node": n.cache_cluster_id, "data-role": n.role },
      h("td", {}, n.cache_cluster_id), h("td", {}, dash(n.cache_node_id)), h("td", {}, dash(n.shard)),
      h("td", { class: `role-${n.role}` }, dash(n.role)), h("td", {}, statusBadge(n.status)),
      h("td", { class: "mono endpoint" }, dash(n.endpoint)), h("td", {}, dash(n.zone)),
      h("td", { class: "engine-version", "data-pending-version": n.pending_engine_version || "" },
        dash(n.engine_version) + (n.pending_engine_version ? ` → ${n.pending_engine_version}` : "")),
      h("td", { class: "parameters" }, applyBadge(n.parameter_status)))))));
}

// ---------------------------------------------------------------------- snapshots (of the group page)
function snapshotActions(name, refresh) {
  const snapshotName = h("input", { id: "snapshot-name", placeholder: `${name}-<date>`, autocomplete: "off" });
  const take = h("button", { id: "snapshot-take", onclick: () => withButton(take, async () => {
    const taken = await call("POST", `/resources/${encodeURIComponent(name)}/snapshots`, { snapshot_name: snapshotName.value });
    flash("notice", `Taking snapshot ${taken.name} of ${name}.`);
    snapshotName.value = "";
    await refresh();
  }) }, "Take snapshot");
  return h("div", { class: "card actions", id: "snapshot-actions" },
    h("div", { class: "group" }, h("label", { class: "field" }, "Snapshot name (optional)", snapshotName), take));
}

function renderSnapshots(box, items) {
  if (!items.length) { box.replaceChildren(h("p", { class: "muted", id: "no-snapshots" }, "No snapshots yet.")); return; }
  // Keep what the user is typing in a restore row while the list refreshes.
  const typed = {};
  box.querySelectorAll("tr[data-snapshot]").forEach((row) => {
    const input = row.querySelector(".restore-name"), shards = row.querySelector(".restore-shards");
    typed[row.dataset.snapshot] = { name: input ? input.value : "", shards: shards ? shards.value : "", focus: row.contains(document.activeElement) };
  });
  const rows = items.map((s) => {
    const before = typed[s.name] || {};
    const target = h("input", { class: "restore-name", placeholder: "new group", value: before.name || "", autocomplete: "off", "aria-label": `restore ${s.name} into` });
    const shards = h("input", { class: "restore-shards", type: "number", min: 1, max: 500, placeholder: `${s.shards}`, value: before.shards || "", "aria-label": "shards" });
    const restore = h("button", { class: "restore-submit", disabled: s.status !== "available", onclick: () => withButton(restore, async () => {
      const created = await call("POST", `/snapshots/${encodeURIComponent(s.name)}/restore`, { name: target.value.trim(), shards: shards.value });
      flash("notice", `Restoring ${s.name} into ${created.id}.`);
      location.hash = `#/r/${encodeURIComponent(created.id)}`;
    }) }, "Restore");
    const remove = h("button", { class: "danger snapshot-delete", disabled: !["available", "failed"].includes(s.status), onclick: () => withButton(remove, async () => {
      await call("DELETE", `/snapshots/${encodeURIComponent(s.name)}`);
      flash("notice", `Deleting snapshot ${s.name}.`);
    }) }, "Delete");
    return h("tr", { "data-snapshot": s.name, "data-status": s.status },
      h("td", {}, s.name), h("td", {}, statusBadge(s.status)), h("td", {}, s.source),
      h("td", { class: "num" }, s.shards), h("td", { class: "num snapshot-size" }, `${s.size_mb} MB`),
      h("td", {}, s.encrypted ? dash(s.kms_key_id) : "no"),
      h("td", { class: "mono nowrap" }, s.created ? new Date(s.created).toLocaleString() : "–"),
      h("td", { class: "nowrap" }, target, shards, restore, remove));
  });
  box.replaceChildren(h("table", { id: "snapshots-table" },
    h("thead", {}, h("tr", {}, ...["Snapshot", "Status", "Type", "Shards", "Size", "Encrypted", "Created", "Restore into"].map((c) =>
      h("th", { class: ["Shards", "Size"].includes(c) ? "num" : null }, c)))),
    h("tbody", {}, ...rows)));
  for (const row of box.querySelectorAll("tr[data-snapshot]")) {
    if ((typed[row.dataset.snapshot] || {}).focus) row.querySelector(".restore-name").focus();
  }
}

function renderEvents(box, items, id = "events-table", empty = "No events in the last 24 hours.") {
  if (!items.length) { box.replaceChildren(h("p", { class: "muted" }, empty)); return; }
  box.replaceChildren(h("table", { id },
    h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "Source"), h("th", {}, "Message"))),
    h("tbody", {}, ...items.slice().reverse().map((e) => h("tr", {},
      h("td", { class: "mono nowrap" }, e.date ? new Date(e.date).toLocaleString() : "–"), h("td", {}, e.source), h("td", { class: "event-message" }, e.message))))));
}

// ---------------------------------------------------------------------- global datastores
function memberKey(m) { return `${m.region}/${m.group}`; }

function memberLines(view) {
  return h("ul", { class: "members" }, ...view.members.map((m) => h("li", { "data-member": memberKey(m), "data-role": m.role },
    h("span", { class: "mono" }, memberKey(m)), " ", h("span", { class: `role role-${m.role.toLowerCase()}` }, m.role), " ",
    statusBadge(m.status))));
}

async function globalListPage(app) {
  const rows = h("tbody", { id: "global-rows" });
  const table = h("table", { id: "global-table" },
    h("thead", {}, h("tr", {}, ...["Global datastore", "Status", "Engine", "Node type", "Cluster mode", "Members (region/group, role, status)"]
      .map((c) => h("th", {}, c)))),
    rows);
  const primary = h("select", { id: "global-primary" });
  const suffix = h("input", { id: "global-suffix", placeholder: "orders", autocomplete: "off" });
  const description = h("input", { id: "global-description", autocomplete: "off" });
  const submit = h("button", { class: "primary", type: "submit", id: "global-create" }, "Create");
  const form = h("form", { class: "card grid", id: "global-create-form", onsubmit: (event) => {
    event.preventDefault();
    withButton(submit, async () => {
      const created = await call("POST", "/global", { primary: primary.value, suffix: suffix.value.trim(), description: description.value });
      flash("notice", `Creating global datastore ${created.id} (${created.status}) with primary ${primary.value}.`);
      location.hash = `#/g/${encodeURIComponent(created.id)}`;
    });
  } },
  h("label", { class: "field" }, "Primary replication group (this region)", primary),
  h("label", { class: "field" }, "Name suffix", suffix),
  h("label", { class: "field" }, "Description", description),
  submit);
  const regionNote = h("p", { class: "muted", id: "global-region-note" });
  app.replaceChildren(
    h("h1", {}, "Global datastores"),
    h("p", { class: "muted" }, "A primary replication group in one region and read-only secondaries in others, kept in sync by replication. ",
      "A secondary is added with CreateReplicationGroup GlobalReplicationGroupId in its own region (boto3, the AWS CLI or Terraform)."),
    table,
    h("h2", {}, "Create a global datastore"),
    regionNote,
    form);
  const refresh = async () => {
    const data = await call("GET", "/global");
    regionNote.textContent = `From an available replication group of ${data.region} that belongs to no global datastore; ` +
      "the id is prefixed as ElastiCache prefixes it. The node type must be large or bigger (m5, m6g, m7g, r5, r6g, r6gd, r7g, c7gn).";
    if (!data.datastores.length) {
      rows.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted", id: "no-global" }, "No global datastores yet.")));
    } else {
      rows.replaceChildren(...data.datastores.map((g) => h("tr", { "data-global": g.id },
        h("td", {}, h("a", { href: `#/g/${encodeURIComponent(g.id)}` }, g.id)),
        h("td", {}, statusBadge(g.status)), h("td", {}, `${dash(g.engine)} ${g.engine_version || ""}`),
        h("td", {}, dash(g.node_type)), h("td", {}, g.cluster_mode ? "enabled" : "disabled"),
        h("td", {}, memberLines(g)))));
    }
    const chosen = primary.value;
    const ids = data.candidates.map((c) => c.id).join(",");
    if (primary.dataset.ids !== ids) {
      primary.dataset.ids = ids;
      primary.replaceChildren(...(data.candidates.length ? data.candidates.map((c) => h("option", { value: c.id },
        `${c.id} (${c.status}, ${dash(c.node_type)}${c.cluster_mode ? ", cluster mode" : ""})`))
        : [h("option", { value: "" }, `no replication group in ${data.region} is free`)]));
      if (data.candidates.some((c) => c.id === chosen)) primary.value = chosen;
    }
  };
  try { await refresh(); } catch (e) { showError(e); }
  every(POLL_MS, refresh);
}

async function globalPage(app, id) {
  const badge = h("span", { id: "status" });
  const summary = h("dl", { class: "summary card", id: "summary" });
  const members = h("div", { id: "members" });
  const actions = h("div", { class: "card actions", id: "global-actions" });
  const events = h("div", { id: "global-events" });
  app.replaceChildren(
    h("p", {}, h("a", { href: "#/global" }, "← All global datastores")),
    h("h1", {}, "Global datastore ", h("span", { id: "global-name" }, id), badge),
    summary,
    h("h2", {}, "Members"),
    h("p", { class: "muted" }, "A planned failover pauses writes on the primary, lets the secondary catch up, then swaps the roles: nothing acknowledged is lost. ",
      "Writers move to the new primary region's primary endpoint."),
    members,
    h("h2", {}, "Delete"), actions,
    h("h2", {}, "Events (of its members, each in its own region)"), events);
  const done = (result) => flash("notice", (result.messages || []).join(" ") || "Done.");
  let gone = false;
  const retain = h("input", { id: "global-retain-primary", type: "checkbox", checked: true });
  const confirmBox = h("span", { id: "global-delete-confirm", class: "confirm", hidden: true });
  const deleteButton = h("button", { class: "danger", id: "global-delete", onclick: () => {
    const what = retain.checked ? "(its primary replication group is kept)" : "and its primary replication group with all its data";
    const yes = h("button", { class: "danger", id: "global-delete-confirm-yes", onclick: () => withButton(yes, async () => {
      confirmBox.hidden = true;
      done(await call("DELETE", `/global/${encodeURIComponent(id)}`, { retain_primary: retain.checked }));
      await refresh();
    }) }, "Yes, delete");
    const no = h("button", { onclick: () => { confirmBox.hidden = true; } }, "Cancel");
    confirmBox.replaceChildren(`Delete global datastore ${id} ${what}?`, yes, no);
    confirmBox.hidden = false;
  } }, "Delete global datastore");
  actions.replaceChildren(
    h("div", { class: "group" }, h("label", { class: "check" }, retain, "Keep the primary replication group (RetainPrimaryReplicationGroup)")),
    h("div", { class: "group" }, deleteButton, confirmBox),
    h("span", { class: "muted" }, "Disassociate every secondary first: a global datastore with secondaries cannot be deleted."));

  const memberAction = (label, cls, path, m) => {
    const button = h("button", { class: cls, onclick: () => withButton(button, async () => {
      done(await call("POST", `/global/${encodeURIComponent(id)}/${path}`, { region: m.region, group: m.group }));
      await refresh();
    }) }, label);
    return button;
  };
  const renderMembers = (view) => {
    members.replaceChildren(h("table", { id: "members-table" },
      h("thead", {}, h("tr", {}, ...["Region", "Replication group", "Role", "Status", "Automatic failover", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, ...view.members.map((m) => h("tr", { "data-member": memberKey(m), "data-role": m.role },
        h("td", {}, m.region),
        h("td", {}, m.region === (state.region || state.session.region) ? h("a", { href: `#/r/${encodeURIComponent(m.group)}` }, m.group) : m.group),
        h("td", { class: `member-role role-${m.role.toLowerCase()}` }, m.role),
        h("td", { class: "member-status" }, statusBadge(m.status)),
        h("td", {}, dash(m.automatic_failover)),
        h("td", { class: "nowrap" }, m.role === "PRIMARY" ? h("span", { class: "muted" }, "takes the writes") : [
          memberAction("Fail over to this region", "member-failover", "failover", m), " ",
          memberAction("Disassociate", "danger member-disassociate", "disassociate", m)]))))));
  };
  const refresh = async () => {
    if (gone) return;
    let view;
    try {
      view = await call("GET", `/global/${encodeURIComponent(id)}`);
    } catch (e) {
      if (e.code === "GlobalReplicationGroupNotFoundFault") {
        gone = true;
        badge.replaceChildren(statusBadge("deleted"));
        summary.replaceChildren(h("dt", {}, "Status"), h("dd", { id: "global-gone" }, `${id} does not exist (any more).`));
        members.replaceChildren(); actions.replaceChildren(h("a", { href: "#/global" }, "Back to the list"));
        return;
      }
      throw e;
    }
    badge.replaceChildren(statusBadge(view.status));
    const rows = [
      ["Engine", `${dash(view.engine)} ${view.engine_version || ""}`],
      ["Node type", view.node_type],
      ["Cluster mode", view.cluster_mode ? "enabled" : "disabled"],
      ["Description", view.description],
      ["Encryption in transit", view.tls ? "yes" : "no"],
      ["Encryption at rest", view.at_rest_encryption ? "yes" : "no"],
      ["ARN", view.arn],
    ].filter(([, value]) => value);
    summary.replaceChildren(...rows.flatMap(([key, value]) => [h("dt", {}, key), h("dd", { "data-field": key }, value)]));
    renderMembers(view);
    renderEvents(events, view.events, "global-events-table", "No events of its members in the last 24 hours.");
  };
  try { await refresh(); } catch (e) { showError(e); }
  every(POLL_MS, refresh);
}

// ---------------------------------------------------------------------- online migration
async function migrationsPage(app) {
  const rows = h("tbody", { id: "migration-rows" });
  app.replaceChildren(
    h("h1", {}, "Online migrations"),
    h("p", { class: "muted" }, "Migrate a self-hosted Valkey or Redis OSS node into a cluster-mode-disabled replication group: ",
      "the group's primary replicates from your node (which is only read, never written to) until you complete the migration."),
    h("table", { id: "migrations-table" },
      h("thead", {}, h("tr", {}, ...["Replication group", "Status", "Engine", "Nodes", "Primary endpoint"].map((c) => h("th", {}, c)))),
      rows));
  const refresh = async () => {
    const data = await call("GET", "/migrations");
    if (!data.groups.length) {
      rows.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "muted", id: "no-migration-targets" },
        `No cluster-mode-disabled replication groups in ${data.region}: create one first.`)));
      return;
    }
    rows.replaceChildren(...data.groups.map((g) => h("tr", { "data-name": g.id },
      h("td", {}, h("a", { href: `#/m/${encodeURIComponent(g.id)}` }, g.id)), h("td", {}, statusBadge(g.status)),
      h("td", {}, `${dash(g.engine)} ${g.engine_version || ""}`), h("td", { class: "num" }, g.nodes),
      h("td", { class: "mono" }, dash(g.endpoint)))));
  };
  try { await refresh(); } catch (e) { showError(e); }
  every(POLL_MS, refresh);
}

function renderTestResult(box, result, pending) {
  if (pending) {
    box.replaceChildren(h("span", { class: "muted" }, "Testing the source…"));
    box.dataset.outcome = "testing";
    return;
  }
  if (!result) { box.replaceChildren(h("span", { class: "muted" }, "Not tested yet.")); box.dataset.outcome = ""; return; }
  const outcome = result.ok === true ? "successful" : result.ok === false ? "failed" : "unknown";
  box.dataset.outcome = outcome;
  box.replaceChildren(h("strong", {}, { successful: "Test passed: ", failed: "Test failed: ", unknown: "No result yet: " }[outcome]),
    h("span", { class: "test-message" }, result.message),
    result.date ? h("span", { class: "muted" }, ` (${new Date(result.date).toLocaleString()})`) : "");
}

async function migrationPage(app, name) {
  const badge = h("span", { id: "status" });
  const summary = h("dl", { class: "summary card", id: "summary" });
  const address = h("input", { id: "migration-address", placeholder: "10.0.0.241", autocomplete: "off" });
  const port = h("input", { id: "migration-port", type: "number", min: 1, max: 65535, value: "6379" });
  const result = h("div", { id: "migration-test-result", class: "card" });
  const force = h("input", { id: "migration-force", type: "checkbox" });
  const events = h("div", { id: "migration-events" });
  const done = (answer) => flash("notice", (answer.messages || []).join(" ") || "Done.");
  const source = () => ({ address: address.value.trim(), port: port.value });
  let testing = false;
  const test = h("button", { id: "migration-test", onclick: () => withButton(test, async () => {
    testing = true;
    renderTestResult(result, null, true);
    try {
      const answer = await call("POST", `/migrations/${encodeURIComponent(name)}/test`, source());
      renderTestResult(result, answer, false);
    } catch (e) {
      renderTestResult(result, null, false);
      throw e;
    } finally { testing = false; }
  }) }, "Test migration");
  const start = h("button", { class: "primary", id: "migration-start", onclick: () => withButton(start, async () => {
    done(await call("POST", `/migrations/${encodeURIComponent(name)}/start`, source()));
    await refresh();
  }) }, "Start migration");
  const complete = h("button", { id: "migration-complete", onclick: () => withButton(complete, async () => {
    done(await call("POST", `/migrations/${encodeURIComponent(name)}/complete`, { force: force.checked }));
    await refresh();
  }) }, "Complete migration");
  app.replaceChildren(
    h("p", {}, h("a", { href: "#/migrations" }, "← All migration targets"), " · ", h("a", { href: `#/r/${encodeURIComponent(name)}` }, `${name}'s page`)),
    h("h1", {}, "Migrate into ", h("span", { id: "migration-name" }, name), badge),
    summary,
    h("h2", {}, "Source node (self-hosted Valkey or Redis OSS, no AUTH)"),
    h("div", { class: "card actions", id: "migration-source" },
      h("div", { class: "group" }, h("label", { class: "field" }, "Address", address), h("label", { class: "field" }, "Port", port)),
      h("div", { class: "group" }, test, start)),
    h("h2", {}, "Test result"), result,
    h("h2", {}, "Complete"),
    h("div", { class: "card actions", id: "migration-finish" },
      h("div", { class: "group" }, h("label", { class: "check" }, force, "Force (complete even if not in sync with the source)"), complete),
      h("span", { class: "muted" }, "The group stops following the source and takes writes again.")),
    h("h2", {}, "Migration events"), events);
  renderTestResult(result, null, false);
  let gone = false;
  const refresh = async () => {
    if (gone) return;
    let view;
    try {
      view = await call("GET", `/migrations/${encodeURIComponent(name)}`);
    } catch (e) {
      if (e.code === "NotFound") {
        gone = true;
        badge.replaceChildren(statusBadge("deleted"));
        summary.replaceChildren(h("dt", {}, "Status"), h("dd", { id: "gone" }, `${name} does not exist (any more).`));
        return;
      }
      throw e;
    }
    badge.replaceChildren(statusBadge(view.status));
    const rows = [
      ["Status", view.status === "migrating" ? "migrating: the primary follows the source; writes to the group are refused (READONLY)" : view.status],
      ["Engine", `${dash(view.engine)} ${view.engine_version || ""}`],
      ["Cluster mode", view.cluster_mode ? "enabled (online migration needs it disabled)" : "disabled"],
      ["Multi-AZ", view.multi_az],
      ["Nodes", String(view.nodes)],
      ["Primary endpoint", view.primary_endpoint],
    ].filter(([, value]) => value);
    summary.replaceChildren(...rows.flatMap(([key, value]) => [h("dt", {}, key), h("dd", { "data-field": key }, value)]));
    if (!testing && result.dataset.outcome === "" && view.last_test) renderTestResult(result, view.last_test, false);
    renderEvents(events, view.events, "migration-events-table", "No migration events in the last 24 hours.");
  };
  try { await refresh(); } catch (e) { showError(e); }
  every(POLL_MS, refresh);
}

// ---------------------------------------------------------------------- routing
async function route() {
  state.page += 1;
  state.timers.forEach(clearTimeout);
  state.timers = [];
  const app = document.getElementById("app");
  const match = location.hash.match(/^#\/r\/(.+)$/);
  const group = location.hash.match(/^#\/p\/(.+)$/);
  const cache = location.hash.match(/^#\/s\/(.+)$/);
  const datastore = location.hash.match(/^#\/g\/(.+)$/);
  const migration = location.hash.match(/^#\/m\/(.+)$/);
  try {
    if (match) await resourcePage(app, decodeURIComponent(match[1]));
    else if (datastore) await globalPage(app, decodeURIComponent(datastore[1]));
    else if (location.hash === "#/global") await globalListPage(app);
    else if (migration) await migrationPage(app, decodeURIComponent(migration[1]));
    else if (location.hash === "#/migrations") await migrationsPage(app);
    else if (cache) await serverlessPage(app, decodeURIComponent(cache[1]));
    else if (group) await parameterGroupPage(app, decodeURIComponent(group[1]));
    else await listPage(app);
  } catch (e) { showError(e); }
}

async function start() {
  try {
    state.session = await call("GET", "/session");
  } catch (e) {
    showError(e);
    state.session = { region: "us-east-1", dev_mode: true };
  }
  const region = document.getElementById("region");
  region.value = state.region || state.session.region;
  region.addEventListener("change", () => {
    state.region = region.value.trim();
    localStorage.setItem("cachefleet.region", state.region);
    route();
  });
  document.getElementById("mode").textContent = state.session.dev_mode ? "dev mode" : "credentials checked";
  const signOut = document.getElementById("sign-out");
  signOut.hidden = !credentials();
  signOut.addEventListener("click", () => { sessionStorage.removeItem("cachefleet.credentials"); signOut.hidden = true; showSignIn(); });
  window.addEventListener("hashchange", route);
  if (!state.session.dev_mode && !credentials()) showSignIn();
  else route();
}

window.addEventListener("error", () => flash("error", "Something went wrong in the page; reload it.", null));
start();
