// flink-rs web UI: a jobs list and, per job, its graph coloured by back pressure, a
// vertex's subtask table and cancel/stop buttons. Plain JS, no framework: it polls
// the REST API (docs/rest-api.md) once a second and updates the page in place.
"use strict";

const POLL_MS = 1000;
const TERMINAL = ["FINISHED", "CANCELED", "FAILED"];
const main = document.getElementById("main");
let timer = null;
let graphOf = null; // the job id whose graph skeleton is on the page
let generation = 0; // bumped on navigation: answers for an earlier page are dropped

// --- helpers -------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children) el.append(c);
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

function rate(x) {
  if (typeof x !== "number") return "–";
  return x.toLocaleString("en-US", { maximumFractionDigits: x < 10 ? 1 : 0 });
}

function count(x) {
  return typeof x === "number" ? x.toLocaleString("en-US") : "–";
}

function duration(ms) {
  if (typeof ms !== "number" || ms < 0) return "–";
  const t = Math.floor(ms / 1000);
  const hh = Math.floor(t / 3600), mm = Math.floor((t % 3600) / 60), ss = t % 60;
  return (hh ? hh + "h " : "") + (hh || mm ? mm + "m " : "") + ss + "s";
}

function levelText(level) {
  return (level || "ok").toUpperCase();
}

function esc(text) {
  const d = document.createElement("span");
  d.textContent = text;
  return d.innerHTML;
}

async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  const token = sessionStorage.getItem("flink-rs-token");
  if (token) opts.headers["Authorization"] = "Bearer " + token;
  let res = await reach(path, opts);
  if (res.status === 401 && opts.method && opts.method !== "GET") {
    // The server guards changes with a bearer token: ask once, then retry.
    const given = window.prompt("This job's server needs a token to change it:");
    if (!given) throw new Error("no token given");
    sessionStorage.setItem("flink-rs-token", given);
    opts.headers["Authorization"] = "Bearer " + given;
    res = await reach(path, opts);
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const why = (body.errors && body.errors.join("; ")) || res.statusText;
    throw new Error(res.status + ": " + why);
  }
  return body;
}

/** A fetch whose failure says the server is gone (the job's process ended). */
async function reach(path, opts) {
  try {
    return await fetch(path, opts);
  } catch (e) {
    throw new Error("the job's server does not answer (has its process ended?)");
  }
}

function stamp(ok) {
  document.getElementById("updated").textContent = ok
    ? "updated " + new Date().toLocaleTimeString()
    : "not updated since an error";
}

// --- routing -------------------------------------------------------------------

function route() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean);
  if (parts[0] === "jobs" && parts[1]) {
    return { page: "job", jid: parts[1], vid: parts[2] === "vertices" ? parts[3] : null };
  }
  return { page: "jobs" };
}

function navigate() {
  clearTimeout(timer);
  generation += 1;
  const r = route();
  if (r.page !== "job" || r.jid !== graphOf) {
    graphOf = null;
    main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  }
  poll();
}

async function poll() {
  const r = route();
  const mine = generation;
  const current = () => mine === generation;
  try {
    if (r.page === "job") await showJob(r.jid, r.vid, current);
    else await showJobs(current);
    if (current()) stamp(true);
  } catch (e) {
    if (!current()) return;
    stamp(false);
    showError(e);
  }
  if (current()) timer = setTimeout(poll, POLL_MS);
}

function showError(e) {
  let box = document.getElementById("error");
  if (!box) {
    box = h("div", { id: "error", class: "error" });
    main.prepend(box);
  }
  box.textContent = String(e.message || e);
}

function clearError() {
  const box = document.getElementById("error");
  if (box) box.remove();
}

// --- jobs list -----------------------------------------------------------------

async function showJobs(current) {
  const { jobs } = await api("/jobs/overview");
  if (!current()) return;
  const rows = jobs.map((j) => {
    const tr = h("tr", {});
    tr.innerHTML =
      `<td><a href="#/jobs/${esc(j.jid)}">${esc(j.name)}</a></td>` +
      `<td class="state state-${esc(j.state)}">${esc(j.state)}</td>` +
      `<td>${new Date(j["start-time"]).toLocaleString()}</td>` +
      `<td class="num">${duration(j.duration)}</td>` +
      `<td class="num">${count(j.tasks.RUNNING)}</td><td><code>${esc(j.jid)}</code></td>`;
    return tr;
  });
  const table = h("table", { id: "jobs" });
  table.innerHTML =
    "<thead><tr><th>Job</th><th>State</th><th>Started</th><th class=num>Duration</th>" +
    "<th class=num>Running tasks</th><th>Id</th></tr></thead>";
  table.append(h("tbody", {}, ...rows));
  main.replaceChildren(h("h1", {}, "Jobs"), table);
}

// --- a job ---------------------------------------------------------------------

async function showJob(jid, vid, current) {
  const job = await api(`/jobs/${encodeURIComponent(jid)}`);
  if (!current()) return;
  if (graphOf !== jid) buildJobPage(job);
  clearError();
  updateJob(job, vid);
  const { pipelines } = await api(`/jobs/${encodeURIComponent(jid)}/pipelines`);
  if (!current()) return;
  showPipelines(pipelines);
  const checkpoints = await checkpointsOf(jid);
  if (!current()) return;
  showCheckpoints(checkpoints);
  const panel = document.getElementById("vertex-panel");
  if (vid !== null && vid !== undefined) {
    const vertex = await api(`/jobs/${encodeURIComponent(jid)}/vertices/${encodeURIComponent(vid)}`);
    if (current()) showSubtasks(panel, vertex);
  } else {
    panel.replaceChildren(h("p", { class: "muted" }, "Click a vertex to see its subtasks."));
  }
}

function buildJobPage(job) {
  const cancel = h("button", { id: "cancel-job", class: "danger" }, "Cancel");
  const stop = h("button", { id: "stop-job" }, "Stop (drain)");
  cancel.onclick = () => act(job.jid, "cancel");
  stop.onclick = () => act(job.jid, "stop");
  const head = h("div", { class: "job-head" },
    h("h1", { id: "job-name" }, job.name),
    h("span", { id: "job-state", class: "state" }),
    h("span", { id: "job-facts", class: "facts" }),
    cancel, stop);
  const legend = h("div", { class: "legend" });
  legend.innerHTML =
    "Back pressure: <span><i style='background:var(--ok)'></i>OK ≤ 10 %</span>" +
    "<span><i style='background:var(--low)'></i>LOW ≤ 50 %</span>" +
    "<span><i style='background:var(--high)'></i>HIGH &gt; 50 %</span>" +
    "<span>· busy bar: the busiest subtask's share of time working</span>";
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← Jobs")),
    head, legend,
    h("div", { id: "bottleneck", class: "bottleneck measuring" }, "Bottleneck: measuring…"),
    h("div", { class: "graph" }, buildGraph(job.jid, job.plan.nodes)),
    h("div", { id: "pipeline-panel" }),
    h("div", { id: "checkpoint-panel" }),
    h("div", { id: "vertex-panel" }));
  graphOf = job.jid;
  history = new Map();
}

async function act(jid, what) {
  try {
    if (what === "cancel") {
      await api(`/jobs/${encodeURIComponent(jid)}?mode=cancel`, { method: "PATCH" });
    } else {
      await api(`/jobs/${encodeURIComponent(jid)}/stop`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ drain: true }),
      });
    }
  } catch (e) {
    showError(e);
  }
}

function updateJob(job, vid) {
  const state = document.getElementById("job-state");
  state.textContent = job.state;
  state.className = "state state-" + job.state;
  document.getElementById("job-facts").textContent =
    `${duration(job.duration)} · ${job.vertices.length} tasks` + (job.stopped ? " · stopped" : "");
  const ended = TERMINAL.includes(job.state);
  document.getElementById("cancel-job").disabled = ended;
  document.getElementById("stop-job").disabled = ended || !job.isStoppable;
  const named = showBottleneck(job.bottleneck);
  for (const v of job.vertices) {
    const g = document.getElementById("vertex-" + v.id);
    if (!g) continue;
    const level = v["backpressure-level"] || "ok";
    const busy = Math.round((v["max-busy-ms-per-second"] || 0) / 10);
    g.setAttribute("class", `vertex level-${level}` + (String(v.id) === String(vid) ? " selected" : "") +
      (String(v.id) === named ? " bottleneck" : ""));
    g.setAttribute("data-level", level.toUpperCase());
    g.setAttribute("data-busy", String(busy));
    g.querySelector(".status").textContent = `${v.status} · ×${v.parallelism}`;
    g.querySelector(".bp").textContent = "Back pressure: " + levelText(level);
    g.querySelector(".busy").textContent = `Busy: ${busy} %`;
    g.querySelector(".busy-bar").setAttribute("width", String((BAR_W * Math.min(busy, 100)) / 100));
    g.querySelector(".rates").textContent =
      `In: ${rate(v["records-in-per-second"])}/s · Out: ${rate(v["records-out-per-second"])}/s`;
  }
}

/**
 * The banner naming the bottleneck (GET /jobs/{id}'s "bottleneck"); returns the
 * bottleneck vertex's id, or null when no task is named.
 */
function showBottleneck(b) {
  const banner = document.getElementById("bottleneck");
  if (!b || !banner) return null;
  banner.setAttribute("class", "bottleneck verdict-" + b.verdict);
  banner.setAttribute("data-verdict", b.verdict);
  const t = b.bottleneck;
  if (b.verdict === "task" && t) {
    banner.setAttribute("data-vertex-id", t.id);
    const hot = t["hottest-operator"];
    const share = t.operators && t.operators.length ? Math.round(t.operators[0].share * 100) : null;
    banner.innerHTML =
      `<b>Bottleneck: ${esc(t.name)}</b> · busy ${Math.round(t.busyTimeMsPerSecond / 10)} %` +
      ` · in ${rate(t["records-in-per-second"])}/s · out ${rate(t["records-out-per-second"])}/s` +
      (hot ? ` · most time in <b>${esc(hot)}</b>${share === null ? "" : ` (${share} %)`}` : "") +
      (t["holds-back"].length ? ` · holds back ${esc(t["holds-back"].join(", "))}` : "");
    return String(t.id);
  }
  banner.removeAttribute("data-vertex-id");
  banner.textContent = b.verdict === "measuring" ? "Bottleneck: measuring…" : b.message;
  return null;
}

// --- the graph -----------------------------------------------------------------

const W = 270, HGT = 104, GAP_X = 90, GAP_Y = 28, PAD = 20, BAR_W = 120;

/** Columns by longest path from a source, so every edge points right. */
function layers(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = new Map();
  const visit = (n, seen) => {
    if (depth.has(n.id)) return depth.get(n.id);
    if (seen.has(n.id)) return 0; // a cycle: place it, do not loop
    seen.add(n.id);
    let d = 0;
    for (const i of n.inputs || []) {
      const up = byId.get(i.id);
      if (up) d = Math.max(d, visit(up, seen) + 1);
    }
    depth.set(n.id, d);
    return d;
  };
  nodes.forEach((n) => visit(n, new Set()));
  return depth;
}

function buildGraph(jid, nodes) {
  const depth = layers(nodes);
  const rowsIn = new Map();
  const pos = new Map();
  for (const n of nodes) {
    const col = depth.get(n.id);
    const row = rowsIn.get(col) || 0;
    rowsIn.set(col, row + 1);
    pos.set(n.id, { x: PAD + col * (W + GAP_X), y: PAD + row * (HGT + GAP_Y) });
  }
  const cols = Math.max(...depth.values()) + 1;
  const rows = Math.max(...rowsIn.values());
  const svg = s("svg", {
    id: "job-graph",
    width: PAD * 2 + cols * W + (cols - 1) * GAP_X,
    height: PAD * 2 + rows * HGT + (rows - 1) * GAP_Y,
  });
  const defs = s("defs", {});
  defs.append(arrowHead());
  svg.append(defs);
  for (const n of nodes) {
    for (const i of n.inputs || []) {
      const a = pos.get(i.id), b = pos.get(n.id);
      if (!a || !b) continue;
      const x1 = a.x + W, y1 = a.y + HGT / 2, x2 = b.x - 4, y2 = b.y + HGT / 2;
      const mx = (x1 + x2) / 2;
      const g = s("g", { class: "edge" });
      g.append(s("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)" }));
      g.append(s("text", { x: mx, y: (y1 + y2) / 2 - 6, "text-anchor": "middle" }, i.ship_strategy));
      svg.append(g);
    }
  }
  for (const n of nodes) svg.append(vertexBox(jid, n, pos.get(n.id)));
  return svg;
}

function arrowHead() {
  const m = s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" });
  m.append(s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#8c99a6" }));
  return m;
}

function vertexBox(jid, n, p) {
  const name = (n.operators && n.operators.length ? n.operators.join(" → ") : n.description) || n.id;
  const short = name.length > 38 ? name.slice(0, 37) + "…" : name;
  const g = s("g", { id: "vertex-" + n.id, class: "vertex level-ok", "data-vertex-id": n.id, transform: `translate(${p.x},${p.y})` });
  g.append(s("title", {}, name));
  g.append(s("rect", { class: "box", width: W, height: HGT, rx: 5 }));
  g.append(s("rect", { class: "band", width: W, height: 24, rx: 5 }));
  g.append(s("text", { class: "title", x: 10, y: 17 }, short));
  g.append(s("text", { class: "status", x: 10, y: 42 }));
  g.append(s("text", { class: "bp", x: W - 10, y: 42, "text-anchor": "end" }));
  g.append(s("text", { class: "busy", x: 10, y: 66 }));
  g.append(s("rect", { class: "busy-track", x: W - 10 - BAR_W, y: 57, width: BAR_W, height: 10, rx: 2 }));
  g.append(s("rect", { class: "busy-bar", x: W - 10 - BAR_W, y: 57, width: 0, height: 10, rx: 2 }));
  g.append(s("text", { class: "rates", x: 10, y: 90 }));
  g.addEventListener("click", () => {
    location.hash = `#/jobs/${jid}/vertices/${n.id}`;
  });
  return g;
}

// --- the five-stage pipeline panel ---------------------------------------------

const SPARK_POINTS = 60, SPARK_W = 120, SPARK_H = 22;
let history = new Map(); // "pipeline/stage" -> the last SPARK_POINTS pressures

const HEALTH_CLASS = { HEALTHY: "ok", MODERATE: "low", HIGH: "high", CRITICAL: "critical" };

/** Each five-stage pipeline of the job: stage health now and over time. */
function showPipelines(pipelines) {
  const panel = document.getElementById("pipeline-panel");
  if (!panel || !pipelines || !pipelines.length) return;
  const parts = [];
  for (const p of pipelines) {
    const a = p.accounting;
    const table = h("table", { class: "pipeline", "data-pipeline": String(p.id) });
    table.innerHTML =
      "<thead><tr><th>Stage</th><th>Health</th><th>Pressure over time</th><th class=num>Pressure</th>" +
      "<th class=num>Queue</th><th class=num>Waiting</th><th class=num>Task BP</th><th class=num>Error rate</th>" +
      "<th class=num>Received</th><th class=num>Emitted</th><th class=num>Dead letters</th>" +
      "<th class=num>Errors</th></tr></thead>";
    const body = h("tbody", {});
    for (const st of p.stages) {
      const key = p.id + "/" + st.name;
      const points = (history.get(key) || []).concat([st.pressure]).slice(-SPARK_POINTS);
      history.set(key, points);
      const tr = h("tr", { "data-stage": st.name });
      tr.innerHTML =
        `<td>${esc(st.name)}</td><td class="health health-${HEALTH_CLASS[st.health] || "ok"}">${esc(st.health)}</td>` +
        `<td></td><td class=num>${st.pressure.toFixed(2)}</td>` +
        `<td class=num>${pct(st["queue-utilization"])}</td><td class=num>${pct(st.waiting)}</td>` +
        `<td class=num>${pct(st["task-back-pressure"])}</td><td class=num>${pct(st["error-rate"])}</td>` +
        `<td class=num>${count(st.received)}</td><td class=num>${count(st.emitted)}</td>` +
        `<td class=num>${count(st["dead-lettered"])}</td><td class=num>${count(st.errors)}</td>`;
      tr.children[2].append(sparkline(points));
      body.append(tr);
    }
    table.append(body);
    const latency = (x) => (typeof x === "number" ? rate(x) + " ms" : "–");
    parts.push(
      h("p", { class: "pipeline-facts" },
        `Pipeline ${p.id}: `, h("b", { class: "health-" + (HEALTH_CLASS[p.health] || "ok") + "-text" }, p.health),
        ` · pressure ${p.pressure.toFixed(2)} · ${count(p["in-pipeline"])} in the pipeline` +
        ` · latency p50 ${latency(p["latency-p50-ms"])}, p99 ${latency(p["latency-p99-ms"])}` +
        ` · received ${count(a.received)}, delivered ${count(a.delivered)}, dead letters ` +
        `${count(a["dead-lettered"])}, errors ${count(a.errors)}` +
        (a.accounted ? " · accounted exactly" : "")),
      h("div", { class: "table-wrap" }, table));
  }
  panel.replaceChildren(h("h2", {}, "Five-stage pipeline"), ...parts);
}

// --- checkpoints -----------------------------------------------------------------

/** GET /jobs/{id}/checkpoints, or null for a job without checkpointing (a 404). */
async function checkpointsOf(jid) {
  const res = await reach(`/jobs/${encodeURIComponent(jid)}/checkpoints`, {});
  if (res.status === 404) return null;
  if (!res.ok) throw new Error(res.status + ": checkpoints");
  return res.json();
}

function bytes(x) {
  if (typeof x !== "number") return "–";
  if (x < 1024) return x + " B";
  if (x < 1024 * 1024) return (x / 1024).toFixed(1) + " KiB";
  return (x / 1024 / 1024).toFixed(1) + " MiB";
}

/** The counts, the latest restore and the history table (newest first). */
function showCheckpoints(stats) {
  const panel = document.getElementById("checkpoint-panel");
  if (!panel || !stats) return;
  const c = stats.counts;
  const restored = stats.latest.restored;
  const facts = h("p", { class: "checkpoint-facts" },
    `Completed ${count(c.completed)} · failed ${count(c.failed)} · in progress ${count(c.in_progress)}` +
    ` · restored ${count(c.restored)}` +
    (restored ? ` (latest: checkpoint ${restored.id}` +
      (restored.external_path ? ` from ${restored.external_path}` : "") + ")" : ""));
  const table = h("table", { id: "checkpoints" });
  table.innerHTML =
    "<thead><tr><th class=num>Id</th><th>Status</th><th>Type</th><th>Triggered</th>" +
    "<th class=num>Duration</th><th class=num>State size</th><th class=num>Acknowledged</th>" +
    "<th>Path or failure</th></tr></thead>";
  const body = h("tbody", {});
  for (const r of stats.history) {
    const tr = h("tr", { "data-checkpoint": String(r.id) });
    tr.innerHTML =
      `<td class=num>${r.id}</td><td class="state state-${esc(r.status)}">${esc(r.status)}</td>` +
      `<td>${r.is_savepoint ? "savepoint" : "checkpoint"}</td>` +
      `<td>${new Date(r.trigger_timestamp).toLocaleTimeString()}</td>` +
      `<td class=num>${count(r.end_to_end_duration)} ms</td><td class=num>${bytes(r.state_size)}</td>` +
      `<td class=num>${r.num_acknowledged_subtasks}/${r.num_subtasks}</td>` +
      `<td><code>${esc(r.external_path || r.failure_message || "")}</code></td>`;
    body.append(tr);
  }
  table.append(body);
  panel.replaceChildren(h("h2", {}, "Checkpoints"), facts, h("div", { class: "table-wrap" }, table));
}

/** Pressure (0..1) over the last polls as an inline SVG line; thresholds shaded. */
function sparkline(points) {
  const svg = s("svg", { class: "spark", width: SPARK_W, height: SPARK_H, viewBox: `0 0 ${SPARK_W} ${SPARK_H}` });
  svg.append(s("title", {}, `pressure over the last ${SPARK_POINTS} updates (shaded: 0.6 and above, HIGH)`));
  svg.append(s("rect", { class: "spark-high", x: 0, y: 0, width: SPARK_W, height: SPARK_H * 0.4 }));
  const step = SPARK_W / (SPARK_POINTS - 1);
  // One reading draws as a flat stroke, not an invisible point.
  if (points.length === 1) points = [points[0], points[0]];
  const off = SPARK_POINTS - points.length;
  const xy = points.map((v, i) =>
    `${((off + i) * step).toFixed(1)},${(SPARK_H - 1 - Math.max(0, Math.min(1, v)) * (SPARK_H - 2)).toFixed(1)}`);
  svg.append(s("polyline", { points: xy.join(" ") }));
  return svg;
}

// --- a vertex's subtasks ---------------------------------------------------------

function showSubtasks(panel, vertex) {
  const table = h("table", { id: "subtasks" });
  // A job spread over processes (process 0 lists every process's subtasks): which
  // process runs each.
  const spread = vertex.subtasks.some((t) => (t.process || 0) > 0);
  table.innerHTML =
    "<thead><tr><th>Subtask</th>" + (spread ? "<th class=num>Process</th>" : "") +
    "<th>Status</th><th>Back pressure</th>" +
    "<th class=num>Busy ms/s</th><th class=num>Back-pressured ms/s</th><th class=num>Idle ms/s</th>" +
    "<th class=num>Records in/s</th><th class=num>Records out/s</th>" +
    "<th class=num>Records received</th><th class=num>Records sent</th>" +
    "<th class=num>Out pool</th><th class=num>In pool</th><th class=num>Duration</th></tr></thead>";
  const body = h("tbody", {});
  for (const t of vertex.subtasks) {
    const m = t.metrics || {};
    const level = t["backpressure-level"] || "ok";
    const tr = h("tr", { "data-subtask": String(t.subtask) });
    tr.innerHTML =
      `<td>${t.subtask + 1}/${vertex.parallelism}</td>` +
      (spread ? `<td class=num>${count(t.process)}</td>` : "") +
      `<td class="state state-${esc(t.status)}">${esc(t.status)}</td>` +
      `<td class="level level-${level}-text">${levelText(level)}</td>` +
      `<td class=num>${rate(t.busyTimeMsPerSecond)}</td><td class=num>${rate(t.backPressuredTimeMsPerSecond)}</td>` +
      `<td class=num>${rate(t.idleTimeMsPerSecond)}</td>` +
      `<td class=num>${rate(t["records-in-per-second"])}</td><td class=num>${rate(t["records-out-per-second"])}</td>` +
      `<td class=num>${count(m["read-records"])}</td><td class=num>${count(m["write-records"])}</td>` +
      `<td class=num>${pct(t["out-pool-usage"])}</td><td class=num>${pct(t["in-pool-usage"])}</td>` +
      `<td class=num>${duration(t.duration)}</td>`;
    body.append(tr);
  }
  table.append(body);
  const ops = vertex.subtasks.length ? vertex.subtasks[0].operators || [] : [];
  panel.replaceChildren(
    h("h2", { id: "vertex-title" }, `${vertex.name}: subtasks`),
    h("div", { class: "table-wrap" }, table),
    h("p", { class: "muted" }, "Chain: " + (ops.map((o) => o.name).join(" → ") || vertex.name)));
}

function pct(x) {
  return typeof x === "number" ? Math.round(x * 100) + " %" : "–";
}

window.addEventListener("hashchange", navigate);
navigate();
