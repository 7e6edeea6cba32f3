// Signalbox dashboard: fills the server's pages from /dashboard/api/… and draws
// charts as inline SVG. No library, nothing fetched from elsewhere. Data is only ever
// put into the page as text (textContent), never as markup.
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]').content;
const page = document.body.dataset.page;
const tenant = document.body.dataset.tenant;
const enc = encodeURIComponent;

async function getJson(path) {
  const r = await fetch(path, { credentials: "same-origin" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((body.error && body.error.message) || r.status);
  return body;
}

async function postJson(path, body) {
  const r = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "content-type": "application/json", "x-csrf-token": csrf() },
    body: JSON.stringify(body || {}),
  });
  const answer = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error((answer.error && answer.error.message) || String(r.status));
  return answer;
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function row(cells, cls) {
  const tr = el("tr", null, cls);
  for (const c of cells) tr.appendChild(c instanceof Node ? wrapTd(c) : el("td", c));
  return tr;
}

function wrapTd(node) {
  const td = el("td");
  td.appendChild(node);
  return td;
}

function fill(tableId, rows) {
  const tbody = document.querySelector(`#${tableId} tbody`);
  tbody.replaceChildren(...rows);
}

const ms = (s) => (s === null || s === undefined ? "–" : `${Math.round(s * 1000)} ms`);
const usd = (v) => Number(v || 0).toFixed(4);
const svgNs = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(svgNs, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function notice(text) {
  const p = document.getElementById("action-result") || document.getElementById("notice");
  if (p) { p.hidden = false; p.textContent = text; }
}

// ---- Overview -------------------------------------------------------------------

let previous = null;
const rateHistory = [];

async function overview() {
  const o = await getJson("/dashboard/api/overview");
  const now = Date.now();
  const rows = [];
  let totalRate = 0;
  for (const [tn, byTarget] of Object.entries(o.traffic)) {
    for (const [tg, t] of Object.entries(byTarget)) {
      const before = previous && previous.o.traffic[tn] && previous.o.traffic[tn][tg];
      const secs = previous ? (now - previous.at) / 1000 : 0;
      const rate = before && secs > 0 ? (t.requests - before.requests) / secs : 0;
      const spendHour = before && secs > 0 ? ((t.cost_usd - before.cost_usd) / secs) * 3600 : 0;
      totalRate += rate;
      const errors = t.requests > 0 ? (t.server_errors / t.requests) * 100 : 0;
      const tr = row([tn, tg, t.requests, t.client_errors, t.server_errors, `${errors.toFixed(1)} %`,
        rate.toFixed(2), usd(t.cost_usd), usd(spendHour)]);
      tr.dataset.tenant = tn;
      tr.dataset.target = tg;
      tr.dataset.requests = String(t.requests);
      rows.push(tr);
    }
  }
  fill("traffic", rows);
  const circuit = ["closed", "half-open", "open"];
  fill("targets", Object.entries(o.targets).map(([tg, s]) => {
    const state = el("span", circuit[s.circuit] || s.circuit, `circuit-${circuit[s.circuit] || "x"}`);
    return row([tg, state, s.in_flight, ms(s.p50_s), ms(s.p99_s), ms(s.ttft_p50_s), ms(s.ttft_p99_s)]);
  }));
  const refused = [];
  for (const [tn, reasons] of Object.entries(o.rejections)) {
    for (const [reason, n] of Object.entries(reasons)) refused.push(row([tn, reason, n]));
  }
  fill("rejections", refused);
  if (previous) rateHistory.push(totalRate);
  if (rateHistory.length > 60) rateHistory.shift();
  lineChart(document.getElementById("rate-chart"), rateHistory);
  previous = { o, at: now };
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

function lineChart(svg, values) {
  const w = 600, h = 120, pad = 20;
  const max = Math.max(1e-9, ...values);
  const pts = values.map((v, i) => `${pad + (i * (w - 2 * pad)) / 59},${h - pad - (v / max) * (h - 2 * pad)}`);
  svg.replaceChildren(
    svgEl("line", { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, class: "axis" }),
    svgEl("text", { x: 2, y: 12 }, `${max.toFixed(2)} req/s`),
    svgEl("polyline", { points: pts.join(" "), class: "line" }),
  );
}

// ---- Routing --------------------------------------------------------------------

let routingBase = null;

async function routing() {
  const o = await getJson("/dashboard/api/overview");
  if (!routingBase) routingBase = o;
  const sincePage = document.getElementById("routing-window").value === "page";
  const base = (map, ...keys) => {
    if (!sincePage) return 0;
    let v = routingBase[map];
    for (const k of keys) v = v && v[k];
    return typeof v === "number" ? v : 0;
  };
  const choices = [];
  for (const [policy, byTarget] of Object.entries(o.decisions[tenant] || {})) {
    const counts = Object.entries(byTarget).map(([tg, n]) => [tg, n - base("decisions", tenant, policy, tg)]);
    const total = counts.reduce((a, [, n]) => a + n, 0);
    for (const [tg, n] of counts) {
      const tr = row([policy, tg, n, total > 0 ? `${((n / total) * 100).toFixed(1)} %` : "–"]);
      tr.dataset.policy = policy;
      tr.dataset.target = tg;
      tr.dataset.decisions = String(n);
      choices.push(tr);
    }
  }
  fill("choices", choices);
  const fallbacks = [];
  for (const [tg, byCause] of Object.entries(o.fallbacks[tenant] || {})) {
    for (const [cause, n] of Object.entries(byCause)) fallbacks.push(row([tg, cause, n - base("fallbacks", tenant, tg, cause)]));
  }
  fill("fallbacks", fallbacks);
  const recent = await getJson(`/dashboard/api/tenants/${enc(tenant)}/decisions`);
  const reasons = new Map();
  for (const d of recent.data) {
    const r = d.decision.reason || (d.decision.rejection ? "rejected" : d.decision.error || "");
    reasons.set(r, (reasons.get(r) || 0) + 1);
  }
  fill("reasons", [...reasons.entries()].sort((a, b) => b[1] - a[1]).map(([r, n]) => row([r, n])));
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

// ---- Policies -------------------------------------------------------------------

const short = (v) => (v ? v.slice(0, 12) : "");

async function policies() {
  const r = await getJson(`/dashboard/api/tenants/${enc(tenant)}/policies`);
  const active = document.getElementById("active");
  active.replaceChildren(el("p", `${r.active.name} @ ${short(r.active.version)} — config ${JSON.stringify(r.active.config)}`));
  active.dataset.version = r.active.version;
  const cand = document.getElementById("candidate");
  if (r.candidate) {
    const c = r.candidate;
    cand.replaceChildren(el("p", `${c.name || ""} @ ${short(c.version)} — ${c.mode || ""}${c.mode === "canary" ? ` (${(c.share * 100).toFixed(0)} % of users)` : ""}`),
      comparison(r), el("details", "", "raw"));
    cand.lastChild.replaceChildren(el("summary", "As the admin API reports it"), el("pre", JSON.stringify(c, null, 2)));
    cand.dataset.version = c.version;
  } else {
    cand.replaceChildren(el("p", "none"));
    delete cand.dataset.version;
  }
  const select = document.getElementById("candidate-version");
  select.replaceChildren(...r.versions.map((v) => {
    const o = el("option", `${v.name} @ ${short(v.version)}`);
    o.value = v.version;
    return o;
  }));
  fill("versions", r.versions.map((v) => {
    const role = v.active ? "active" : v.candidate ? "candidate" : "";
    const activate = el("button", "Activate");
    activate.type = "button";
    activate.className = "activate";
    activate.dataset.version = v.version;
    activate.addEventListener("click", () => act("activate", { version: v.version }, `Activate ${v.name} @ ${short(v.version)}?`));
    const tr = row([v.name, short(v.version), role, v.calls, v.errors, v.quarantined ? "yes" : "", activate]);
    tr.dataset.version = v.version;
    return tr;
  }));
  fill("history", r.history.map((h) => row([h.name, short(h.version), JSON.stringify(h.config)])));
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

// The active version and the candidate side by side: this replica's counts and, in a
// fleet, the fleet's (every replica that runs the same two versions).
function comparison(r) {
  const c = r.candidate;
  const fleet = r.fleet && r.fleet.candidate && r.fleet.candidate.version === c.version ? r.fleet : null;
  const columns = [["Active (this replica)", r.active.traffic], ["Candidate (this replica)", c.traffic]];
  if (fleet) {
    columns.push([`Active (fleet, ${fleet.replicas} replicas)`, fleet.active.traffic]);
    columns.push([`Candidate (fleet, ${fleet.replicas} replicas)`, fleet.candidate.traffic]);
  }
  const pct = (x) => (x == null ? "–" : `${(x * 100).toFixed(1)} %`);
  const lines = [
    ["Requests", (t) => t.requests],
    ["Errors", (t) => t.errors],
    ["Error rate", (t) => pct(t.error_rate)],
    ["Mean latency", (t) => `${t.mean_latency_ms.toFixed(1)} ms`],
    ["Cost ($)", (t) => usd(t.cost_usd)],
  ];
  const table = el("table");
  table.id = "compare";
  const head = el("tr");
  head.append(el("th", ""), ...columns.map(([name]) => el("th", name)));
  const body = el("tbody");
  for (const [name, value] of lines) {
    const tr = row([name, ...columns.map(([, t]) => value(t))]);
    tr.dataset.line = name;
    body.append(tr);
  }
  const shadows = [["this replica", c.shadow]];
  if (fleet && fleet.candidate.shadow) shadows.push([`fleet, ${fleet.replicas} replicas`, fleet.candidate.shadow]);
  for (const [where, s] of shadows.filter(([, s]) => s)) {
    for (const [name, value] of [
      ["Shadow decisions", s.decisions],
      ["Same first target", pct(s.agreement_rate)],
      ["Shadow failures", s.failures],
      ["Cost served / on the shadow's choice ($)", `${usd(s.active_cost_usd)} / ${usd(s.shadow_cost_usd)}`],
      ["Estimated cost difference ($)", usd(s.estimated_cost_difference_usd)],
    ]) {
      const tr = row([`${name} (${where})`, value]);
      tr.lastChild.colSpan = columns.length;
      tr.dataset.line = name;
      body.append(tr);
    }
  }
  table.append(el("thead"), body);
  table.firstChild.append(head);
  return table;
}

async function act(op, body, question) {
  if (!window.confirm(question)) return;
  try {
    await postJson(`/dashboard/api/tenants/${enc(tenant)}/${op}`, body);
    notice(`${op}: done`);
  } catch (e) {
    notice(`${op} refused: ${e.message}`);
  }
  await policies();
}

function policiesPage() {
  document.getElementById("rollback").addEventListener("click", () => act("rollback", {}, "Roll back to the previous binding?"));
  document.getElementById("promote").addEventListener("click", () => act("candidate/promote", {}, "Promote the candidate?"));
  document.getElementById("discard").addEventListener("click", () => act("candidate/discard", {}, "Discard the candidate?"));
  document.getElementById("start-candidate").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const version = document.getElementById("candidate-version").value;
    const mode = document.getElementById("candidate-mode").value;
    const percent = Number(document.getElementById("candidate-percent").value);
    const body = mode === "canary" ? { version, mode, percent } : { version, mode };
    act("candidate", body, `Start ${short(version)} as a ${mode}${mode === "canary" ? ` at ${percent} %` : ""}?`);
  });
  policies().catch((e) => notice(e.message));
}

// ---- Usage ----------------------------------------------------------------------

async function budgets() {
  const r = await getJson("/dashboard/api/budgets");
  const rows = [];
  for (const b of r.data) {
    for (const window of ["day", "month"]) {
      const { spent_usd: spent, limit_usd: limit } = b[window];
      const burn = svgEl("svg", { viewBox: "0 0 200 12", width: 200, height: 12, class: "chart" });
      if (limit) {
        const share = Math.min(1, spent / limit);
        burn.appendChild(svgEl("rect", { x: 0, y: 0, width: 200 * share, height: 12, class: "bar" }));
        burn.appendChild(svgEl("title", {}, `${(share * 100).toFixed(1)} % of the ${window}'s budget`));
      }
      const tr = row([b.tenant, window, usd(spent), limit ? usd(limit) : "no budget", burn]);
      tr.dataset.tenant = b.tenant;
      tr.dataset.window = window;
      rows.push(tr);
    }
  }
  fill("budgets", rows);
}

async function usage() {
  await budgets();
  const groupBy = document.getElementById("group-by").value;
  const r = await getJson(`/dashboard/api/usage?group_by=${enc(groupBy)}`);
  fill("usage", r.data.map((a) => row([a.tenant, a.group, a.requests, a.input_tokens, a.output_tokens, usd(a.cost_usd)])));
  barChart(document.getElementById("usage-chart"), r.data.map((a) => [`${a.tenant} ${a.group}`, a.cost_usd]));
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

function barChart(svg, bars) {
  const w = 600, h = 160, pad = 24;
  const max = Math.max(1e-9, ...bars.map((b) => b[1]));
  const bw = bars.length ? (w - 2 * pad) / bars.length : 0;
  const parts = [svgEl("line", { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, class: "axis" }),
    svgEl("text", { x: 2, y: 12 }, `$${usd(max)}`)];
  bars.forEach(([label, v], i) => {
    const bh = (v / max) * (h - 2 * pad);
    const rect = svgEl("rect", { x: pad + i * bw + 2, y: h - pad - bh, width: Math.max(1, bw - 4), height: bh, class: "bar" });
    rect.appendChild(svgEl("title", {}, `${label}: $${usd(v)}`));
    parts.push(rect);
    if (bars.length <= 12) parts.push(svgEl("text", { x: pad + i * bw + 2, y: h - 8 }, label.slice(0, 18)));
  });
  svg.replaceChildren(...parts);
}

// ---- Decisions ------------------------------------------------------------------

async function decisions() {
  const r = await getJson(`/dashboard/api/tenants/${enc(tenant)}/decisions`);
  fill("decisions", r.data.map((d) => {
    const when = new Date(d.ts_ms).toISOString().replace("T", " ").slice(0, 19);
    const targets = (d.decision.targets || []).join(", ");
    const status = d.outcome ? d.outcome.status : "";
    const tr = row([when, d.request_id, d.request.model, d.decision.policy, targets, status], "clickable");
    tr.dataset.requestId = d.request_id;
    tr.addEventListener("click", () => showDecision(d.request_id));
    return tr;
  }));
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

async function showDecision(id) {
  const d = await getJson(`/dashboard/api/tenants/${enc(tenant)}/decisions/${enc(id)}`);
  document.getElementById("decision").hidden = false;
  document.getElementById("decision-id").textContent = id;
  const reason = d.decision.reason || (d.decision.rejection && d.decision.rejection.message) || d.decision.error || "";
  document.getElementById("decision-reason").textContent = reason;
  document.getElementById("decision-detail").textContent = JSON.stringify(d, null, 2);
}

// ---- Replay ---------------------------------------------------------------------

function replayPage() {
  document.getElementById("replay-file").addEventListener("change", async (ev) => {
    const file = ev.target.files[0];
    if (!file) return;
    try {
      replayChart(JSON.parse(await file.text()));
    } catch (e) {
      notice(`not a replay report: ${e.message}`);
    }
  });
}

function replayChart(report) {
  const points = [];
  const add = (label, o, kind) => { if (o && typeof o.cost === "number") points.push({ label, cost: o.cost, quality: o.quality, kind }); };
  add(`policy ${report.policy && report.policy.file}`, report.policy, "policy");
  const b = report.baselines || {};
  add("always strong", b.always_strong, "base");
  add("always weak", b.always_weak, "base");
  add("random", b.random, "base");
  add("oracle", b.oracle, "base");
  for (const m of b.single_models || []) add(m.model, m, "model");
  const curve = (report.curve || []).map((c) => c.operating || c);
  const w = 600, h = 300, pad = 40;
  const all = points.concat(curve.map((c) => ({ cost: c.cost, quality: c.quality })));
  const maxC = Math.max(1e-9, ...all.map((p) => p.cost));
  const qs = all.map((p) => p.quality);
  const minQ = Math.min(...qs), maxQ = Math.max(minQ + 1e-9, ...qs);
  const x = (c) => pad + (c / maxC) * (w - 2 * pad);
  const y = (q) => h - pad - ((q - minQ) / (maxQ - minQ)) * (h - 2 * pad);
  const parts = [svgEl("line", { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, class: "axis" }),
    svgEl("line", { x1: pad, y1: pad, x2: pad, y2: h - pad, class: "axis" }),
    svgEl("text", { x: w - pad - 60, y: h - 8 }, `cost → $${maxC.toFixed(2)}`),
    svgEl("text", { x: 2, y: pad - 8 }, `quality ${maxQ.toFixed(3)}`)];
  if (curve.length) {
    parts.push(svgEl("polyline", { points: curve.map((c) => `${x(c.cost)},${y(c.quality)}`).join(" "), class: "line" }));
  }
  for (const p of points) {
    const dot = svgEl("circle", { cx: x(p.cost), cy: y(p.quality), r: p.kind === "policy" ? 6 : 4, fill: p.kind === "policy" ? "#c62828" : "#5d6975" });
    dot.appendChild(svgEl("title", {}, `${p.label}: $${p.cost.toFixed(4)}, quality ${p.quality.toFixed(3)}`));
    parts.push(dot, svgEl("text", { x: x(p.cost) + 6, y: y(p.quality) - 4 }, p.label));
  }
  document.getElementById("replay-chart").replaceChildren(...parts);
  fill("replay", points.map((p) => row([p.label, `$${p.cost.toFixed(4)}`, p.quality.toFixed(3)])));
}

// ---- Start ----------------------------------------------------------------------

function poll(fn, everyMs) {
  const run = () => fn().catch((e) => notice(e.message)).finally(() => setTimeout(run, everyMs));
  run();
}

if (page === "overview") poll(overview, 3000);
else if (page === "routing") {
  document.getElementById("routing-window").addEventListener("change", () => routing().catch((e) => notice(e.message)));
  poll(routing, 5000);
}
else if (page === "policies") policiesPage();
else if (page === "usage") {
  document.getElementById("group-by").addEventListener("change", () => usage().catch((e) => notice(e.message)));
  poll(usage, 10000);
} else if (page === "decisions") poll(decisions, 5000);
else if (page === "replay") replayPage();
