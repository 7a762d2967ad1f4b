/**
 * The status page: one self-contained HTML document (no build step, no external assets) with
 * three views, each at its own URL so a reload or a shared link shows the same thing:
 * - `/` — jobs, newest first, filtered by config, status and mode (in the query string), a page
 *   at a time, with live progress, and the workers;
 * - `/jobs/<jobId>` — one job: its summary and window, records per second over time and chunk
 *   round trips as SVG charts, the chunk grid (hover: a chunk's state; click: its detail), step
 *   statistics, failures, and its results and exceptions a page at a time;
 * - `/configs/<name>` — one config: its lanes, watermark and full-job lock, the windows of its
 *   recent jobs along the order key, the backlog, and the next scheduled run.
 * Links move between views with history.pushState (no reload); back and forward work.
 * It polls the JSON API every 2 seconds. Everything that came from outside (ids, names,
 * descriptions, errors, results) is escaped before it is put in the page; the server's
 * Content-Security-Policy lets nothing but this script run. With `?token=`, every link and
 * request carries the token.
 */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>chunkrelay status</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 24px; color: #1d232a; background: #f7f8fa; }
  h1 { font-size: 20px; margin: 0 0 16px; } h1 a { color: inherit; text-decoration: none; }
  h2 { font-size: 16px; margin: 24px 0 8px; }
  a { color: #1a5fb4; }
  table { border-collapse: collapse; width: 100%; background: #fff; }
  th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #e4e7eb; white-space: nowrap; }
  td.wrap { white-space: normal; word-break: break-all; }
  tr.job:hover, tr.selected { background: #eef4ff; }
  form#filters { margin: 0 0 12px; display: flex; gap: 8px; align-items: center; }
  .bar { width: 200px; height: 12px; background: #e4e7eb; border-radius: 6px; overflow: hidden; display: inline-block; vertical-align: middle; }
  .fill { display: block; height: 100%; background: #2f80ed; }
  .status-succeeded, .status-live, .status-processed { color: #1e8e3e; } .status-failed, .status-stale { color: #d93025; }
  .status-running, .status-planning, .status-sent, .status-dispatching { color: #2f80ed; } .status-stopped, .status-pending { color: #6b7280; }
  .timeline { display: flex; flex-wrap: wrap; gap: 2px; background: #fff; padding: 8px; }
  .chunk { width: 14px; height: 14px; border-radius: 2px; cursor: pointer; }
  .chunk.picked { outline: 2px solid #1d232a; }
  .c-pending { background: #d0d5dd; } .c-dispatching { background: #f2c94c; } .c-sent { background: #56ccf2; }
  .c-processed { background: #27ae60; } .c-failed { background: #eb5757; }
  .charts { display: flex; gap: 24px; flex-wrap: wrap; }
  .chart { background: #fff; padding: 8px; } .chart svg { display: block; }
  .panel { background: #fff; padding: 8px 12px; border-left: 3px solid #2f80ed; margin-top: 8px; }
  .pager { margin: 6px 0; display: flex; gap: 8px; }
  .muted { color: #6b7280; } .error { color: #d93025; }
  nav { margin: -8px 0 16px; }
</style>
</head>
<body>
<h1><a id="home" href="/">chunkrelay</a> <span class="muted" id="updated"></span></h1>
<nav id="nav"></nav>
<div id="view"></div>
<script>
"use strict";
// The address's query; read again at each navigation. The token is the one the page was opened with.
let params = new URLSearchParams(location.search);
const token = params.get("token");
const headers = token ? { authorization: "Bearer " + token } : {};
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
/** An API path with its query (the token goes in the Authorization header, not the URL). */
const apiPath = (path, query) => {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null && v !== "") u.set(k, String(v));
  const s = u.toString();
  return path + (s ? "?" + s : "");
};
/** A page link: the path and query, with the token when the page has one. */
const href = (path, query) => apiPath(path, { ...(query || {}), token });
const link = (path, text, query, id) => '<a' + (id ? ' id="' + esc(id) + '"' : "") + ' href="' + esc(href(path, query)) + '">' + esc(text) + "</a>";
const jobPath = (id) => "/jobs/" + encodeURIComponent(id);
const configPath = (name) => "/configs/" + encodeURIComponent(name);
const api = async (path) => {
  const res = await fetch(path, { headers });
  if (!res.ok) {
    let detail = "";
    try { detail = (await res.json()).error || ""; } catch (e) { detail = ""; }
    throw new Error(path.split("?")[0] + ": HTTP " + res.status + (detail ? ": " + detail : ""));
  }
  const next = /<([^>]*)>;\\s*rel="next"/.exec(res.headers.get("link") || "");
  return { body: await res.json(), next: next ? new URL(next[1], location.origin).searchParams.get("before") : null };
};
const when = (d) => { const v = d && d.$date ? d.$date : d; return v ? new Date(v) : null; };
const time = (d) => { const t = when(d); return t ? t.toLocaleTimeString() : "-"; };
const stamp = (d) => { const t = when(d); return t ? t.toISOString().replace("T", " ").slice(0, 19) : "-"; };
const ejson = (v) => JSON.stringify(v);
const statusCell = (s) => '<td class="status-' + esc(s) + '">' + esc(s) + "</td>";
let timer = null;
/** Bumped at each navigation: a view's polling (and a reply still on its way) stops when it changes. */
let generation = 0;
/** Runs fn now and every ms after it ends, while the view it belongs to is shown; fn is told how to tell. */
const every = (ms, fn) => {
  const mine = generation;
  const stale = () => mine !== generation;
  const tick = async () => { if (stale()) return; await fn(stale); if (!stale()) timer = setTimeout(tick, ms); };
  tick();
};
const fail = (err) => { document.getElementById("updated").innerHTML = '<span class="error">' + esc(err.message) + "</span>"; };
const updated = () => { document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString(); };

// ------------------------------------------------------------------------------------------
// The job list: filters and paging in the query string.
async function renderJobList() {
  const filter = { config: params.get("config") || "", status: params.get("status") || "", mode: params.get("mode") || "" };
  const before = params.get("before") || "";
  // The page size stays with the list as it is paged (the server's default when absent).
  const limit = params.get("limit") || "";
  const configs = (await api("/api/configs")).body;
  const opt = (value, label, selected) => '<option value="' + esc(value) + '"' + (value === selected ? " selected" : "") + ">" + esc(label) + "</option>";
  document.getElementById("view").innerHTML =
    '<form id="filters" method="get" action="/">' +
    (token ? '<input type="hidden" name="token" value="' + esc(token) + '">' : "") +
    (limit ? '<input type="hidden" name="limit" value="' + esc(limit) + '">' : "") +
    '<select name="config" id="f-config">' + opt("", "every config", filter.config) + configs.map((c) => opt(c, c, filter.config)).join("") + "</select>" +
    '<select name="status" id="f-status">' + opt("", "every status", filter.status) + ["planning", "running", "succeeded", "failed"].map((s) => opt(s, s, filter.status)).join("") + "</select>" +
    '<select name="mode" id="f-mode">' + opt("", "every mode", filter.mode) + ["full", "incremental", "backfill", "sample", "exceptions"].map((s) => opt(s, s, filter.mode)).join("") + "</select>" +
    '<button type="submit" id="f-apply">filter</button></form>' +
    '<table id="jobs"><thead><tr><th>job</th><th>config</th><th>mode</th><th>status</th><th>progress</th><th>records</th><th>exceptions</th><th>created</th></tr></thead><tbody></tbody></table>' +
    '<div class="pager" id="jobs-pager"></div>' +
    '<h2>workers</h2><table id="workers"><thead><tr><th>name</th><th>kind</th><th>host</th><th>pid</th><th>started</th><th>heartbeat</th><th>chunks</th><th>records</th><th>succeeded</th><th>failed</th><th>state</th></tr></thead><tbody></tbody></table>';
  // A filter change is a new URL: the view survives a reload and can be shared.
  every(2000, async (stale) => {
    try {
      const { body: jobs, next } = await api(apiPath("/api/jobs", { ...filter, before, limit }));
      const rows = await Promise.all(jobs.map(async (j) => {
        let done = j.processed + j.exceptions;
        let total = j.records;
        if (j.status === "running" || j.status === "planning") {
          const r = (await api("/api/jobs/" + encodeURIComponent(j.jobId))).body;
          done = r.progress.processedRecords + r.progress.failedRecords;
          total = r.progress.totalRecords;
        }
        const pct = total ? Math.round((100 * done) / total) : j.status === "succeeded" ? 100 : 0;
        return '<tr class="job" data-job="' + esc(j.jobId) + '"><td>' + link(jobPath(j.jobId), j.jobId) + "</td><td>" + link(configPath(j.config), j.config) +
          "</td><td>" + esc(j.mode) + (j.partitioning ? ' <span class="muted">' + esc(j.partitioning) + "</span>" : "") + "</td>" + statusCell(j.status) +
          '<td><span class="bar"><span class="fill" style="width:' + pct + '%"></span></span> <span class="pct">' + pct + "%</span></td><td>" +
          esc(done) + "/" + esc(total) + "</td><td>" + esc(j.exceptions) + "</td><td>" + esc(stamp(j.createdAt)) + "</td></tr>";
      }));
      if (stale()) return;
      document.querySelector("#jobs tbody").innerHTML = rows.join("") || '<tr><td colspan="8" class="muted">no jobs</td></tr>';
      document.getElementById("jobs-pager").innerHTML =
        (before ? link("/", "newest", { ...filter, limit }, "jobs-first") : "") + (next ? link("/", "older", { ...filter, limit, before: next }, "jobs-older") : "");
      await renderWorkers(stale);
      updated();
    } catch (err) { fail(err); }
  });
}

async function renderWorkers(stale) {
  const workers = (await api("/api/workers?all=true")).body;
  if (stale()) return;
  document.querySelector("#workers tbody").innerHTML = workers.length
    ? workers.map((w) => '<tr class="worker state-' + esc(w.state) + '"><td>' + esc(w.name) + "</td><td>" + esc(w.kind) + "</td><td>" + esc(w.host) +
      "</td><td>" + esc(w.pid) + "</td><td>" + esc(time(w.startedAt)) + "</td><td>" + esc(Math.round(w.heartbeatAgeMs / 1000)) + " s ago</td><td>" +
      esc(w.chunks) + "</td><td>" + esc(w.records) + "</td><td>" + esc(w.succeeded) + "</td><td>" + esc(w.failed) + '</td><td class="status-' + esc(w.state) + '">' + esc(w.state) + "</td></tr>").join("")
    : '<tr><td colspan="11" class="muted">no workers in the last 10 minutes</td></tr>';
}

// ------------------------------------------------------------------------------------------
// Charts: plain SVG bars, each with a title (its value on hover).
function barChart(id, title, values, labels, unit) {
  const w = 560, h = 140, pad = 28;
  const max = Math.max(1, ...values);
  const bw = (w - pad) / Math.max(1, values.length);
  const bars = values.map((v, i) => {
    // At least a pixel: a zero is still a point on the chart.
    const bh = Math.max(1, Math.round(((h - 20) * v) / max));
    return '<rect x="' + (pad + i * bw).toFixed(1) + '" y="' + (h - 10 - bh) + '" width="' + Math.max(1, bw - 1).toFixed(1) + '" height="' + bh + '" fill="#2f80ed"><title>' + esc(labels[i] + ": " + v + " " + unit) + "</title></rect>";
  }).join("");
  return '<div class="chart"><div>' + esc(title) + '</div><svg id="' + esc(id) + '" width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + " " + h + '" role="img" aria-label="' + esc(title) + '">' +
    '<line x1="' + pad + '" y1="' + (h - 10) + '" x2="' + w + '" y2="' + (h - 10) + '" stroke="#9aa3ad"/>' +
    '<text x="0" y="12" font-size="10" fill="#6b7280">' + esc(max) + "</text>" + '<text x="0" y="' + (h - 12) + '" font-size="10" fill="#6b7280">0</text>' + bars +
    (values.length === 0 ? '<text x="' + (w / 2) + '" y="' + (h / 2) + '" font-size="12" fill="#6b7280" text-anchor="middle">nothing yet</text>' : "") + "</svg></div>";
}

// ------------------------------------------------------------------------------------------
// One job.
const pages = { results: [null], exceptions: [null] };
let picked = null;
async function renderJob(id) {
  document.getElementById("nav").innerHTML = link("/", "all jobs");
  document.getElementById("view").innerHTML =
    '<h2 id="job-title"></h2><p id="description"></p><p id="summary"></p><p id="window"></p><div class="charts" id="charts"></div>' +
    '<h2>chunks <span class="muted">(click one for its detail)</span></h2><div class="timeline" id="chunks"></div><div id="chunk-detail"></div>' +
    '<h2>steps</h2><table id="steps"></table><h2>failures</h2><div id="failures"></div>' +
    '<h2>results</h2><div class="pager" id="results-pager"></div><table id="results"></table>' +
    '<h2>exceptions</h2><div class="pager" id="exceptions-pager"></div><table id="exceptions"></table>';
  let chunks = [];
  document.getElementById("chunks").addEventListener("click", (e) => {
    const n = Number(e.target && e.target.dataset ? e.target.dataset.chunk : NaN);
    if (!Number.isFinite(n)) return;
    picked = n;
    showChunk(chunks);
  });
  let finished = false;
  every(2000, async (stale) => {
    if (finished) return;
    try {
      const [r, tl] = [(await api("/api/jobs/" + encodeURIComponent(id))).body, (await api("/api/jobs/" + encodeURIComponent(id) + "/timeline")).body];
      if (stale()) return;
      const p = r.progress;
      chunks = r.chunks;
      document.getElementById("job-title").innerHTML = esc(id) + ' <span class="status-' + esc(r.job.status) + '">' + esc(r.job.status) + "</span> " + '<span class="muted">config</span> ' + link(configPath(r.job.config), r.job.config, {}, "job-config");
      document.getElementById("description").textContent = r.job.description || "";
      document.getElementById("summary").innerHTML = esc(p.processedRecords + p.failedRecords) + "/" + esc(p.totalRecords) + " records, " + esc(p.doneChunks) + "/" + esc(p.totalChunks) +
        " chunks, " + esc(p.inFlightChunks) + " in flight, " + esc(r.recordsPerSecond) + " records/s, config hash " + esc(r.job.configHash) +
        (r.driftedChunks.length ? ', <span class="error">chunks sent under another config: ' + esc(r.driftedChunks.join(", ")) + "</span>" : "");
      document.getElementById("window").innerHTML = "mode " + esc(r.job.mode) + "<br>" + r.windowLines.map(esc).join("<br>");
      const secs = tl.bucketMs / 1000;
      document.getElementById("charts").innerHTML =
        barChart("chart-rate", "records per second (buckets of " + secs + " s)", tl.recordsPerSecond, tl.recordsPerSecond.map((_, i) => "+" + i * secs + " s"), "records/s") +
        barChart("chart-rtt", "chunk round trips, sent to done (p50 " + tl.roundTripStats.p50Ms + " ms, p95 " + tl.roundTripStats.p95Ms + " ms, max " + tl.roundTripStats.maxMs + " ms)",
          tl.roundTrips.map((t) => t.ms), tl.roundTrips.map((t) => "chunk " + t.chunk + " (" + t.status + ")"), "ms");
      document.getElementById("chunks").innerHTML = chunks.map((c) => '<div class="chunk c-' + esc(c.status) + (c.chunk === picked ? " picked" : "") + '" data-chunk="' + esc(c.chunk) + '" title="' +
        esc("chunk " + c.chunk + ": " + c.status + ", attempt " + c.attempt + ", " + c.recordCount + " records") + '"></div>').join("");
      showChunk(chunks);
      document.getElementById("steps").innerHTML = "<tr><th>step</th><th>runs</th><th>ok</th><th>failed</th><th>p50</th><th>p95</th><th>max</th></tr>" +
        r.steps.map((s) => "<tr><td>" + esc(s.task) + "</td><td>" + esc(s.invocations) + "</td><td>" + esc(s.succeeded) + "</td><td>" + esc(s.failed) + "</td><td>" + esc(s.p50Ms) +
          " ms</td><td>" + esc(s.p95Ms) + " ms</td><td>" + esc(s.maxMs) + " ms</td></tr>").join("");
      const failures = chunks.filter((c) => c.lastError);
      document.getElementById("failures").innerHTML = failures.length
        ? "<table>" + failures.map((c) => "<tr><td>chunk " + esc(c.chunk) + '</td><td class="error wrap">' + esc(c.lastError) + "</td></tr>").join("") + "</table>"
        : '<p class="muted">none</p>';
      await Promise.all([renderRows(id, "results"), renderRows(id, "exceptions")]);
      updated();
      // A finished job no longer changes (but for a rerun, which a reload shows).
      finished = r.job.status === "succeeded" || r.job.status === "failed";
    } catch (err) { fail(err); }
  });
}

function showChunk(chunks) {
  const c = chunks.find((x) => x.chunk === picked);
  document.querySelectorAll("#chunks .chunk").forEach((el) => el.classList.toggle("picked", Number(el.dataset.chunk) === picked));
  document.getElementById("chunk-detail").innerHTML = !c ? "" :
    '<div class="panel" id="chunk-panel"><b>chunk ' + esc(c.chunk) + '</b> <span class="status-' + esc(c.status) + '">' + esc(c.status) + "</span>, attempt " + esc(c.attempt) +
    ", " + esc(c.recordCount) + " records" + (c.done ? ", " + esc(c.processedCount || 0) + " processed, " + esc(c.failedCount || 0) + " failed" : "") +
    "<br>config " + esc(c.configHash) + ", sent " + esc(stamp(c.sentAt)) + ", finished " + esc(stamp(c.finishedAt)) +
    "<br>keys " + esc(ejson(c.firstKey)) + " … " + esc(ejson(c.lastKey)) +
    ((c.history || []).length ? "<br>attempts: " + c.history.map((h) => esc("#" + h.attempt + " " + h.outcome + " at " + stamp(h.at))).join(", ") : "") +
    ((c.reruns || []).length ? "<br>reruns: " + c.reruns.map((x) => esc("attempt " + x.attempt + " (" + x.scope + ") at " + stamp(x.at))).join(", ") : "") +
    (c.lastError ? '<br><span class="error wrap">' + esc(c.lastError) + "</span>" : "") + "</div>";
}

/** A page of a job's results or exceptions; prev/next keep a stack of cursors. */
async function renderRows(id, kind) {
  const mine = generation;
  const stack = pages[kind];
  const after = stack[stack.length - 1];
  const q = new URLSearchParams({ limit: "20" });
  if (after) q.set("after", after);
  const page = (await api("/api/jobs/" + encodeURIComponent(id) + "/" + kind + "?" + q.toString())).body;
  if (mine !== generation) return;
  const table = document.getElementById(kind);
  if (kind === "results") {
    table.innerHTML = "<tr><th>record</th><th>chunk</th><th>status</th><th>attempt</th><th>result</th><th>error</th></tr>" + (page.rows.length
      ? page.rows.map((r) => '<tr class="row"><td>' + esc(ejson(r.recordId)) + "</td><td>" + esc(r.chunk) + "</td>" + statusCell(r.status) + "<td>" + esc(r.attempts) +
        '</td><td class="wrap">' + (r.result !== undefined ? esc(ejson(r.result)) : "") + (r.resultError ? ' <span class="error">' + esc(r.resultError) + "</span>" : "") +
        '</td><td class="wrap error">' + esc(r.error || "") + "</td></tr>").join("")
      : '<tr><td colspan="6" class="muted">none</td></tr>');
  } else {
    table.innerHTML = "<tr><th>record</th><th>chunk</th><th>attempts</th><th>reason</th><th>resolution</th></tr>" + (page.rows.length
      ? page.rows.map((e) => '<tr class="row"><td>' + esc(ejson(e.recordId)) + "</td><td>" + esc(e.chunk) + "</td><td>" + esc(e.attempts) + '</td><td class="wrap error">' + esc(e.reason) +
        '</td><td class="wrap">' + (e.resolution ? esc(e.resolution.note) : "") + "</td></tr>").join("")
      : '<tr><td colspan="5" class="muted">none</td></tr>');
  }
  const pager = document.getElementById(kind + "-pager");
  pager.innerHTML = (stack.length > 1 ? '<button id="' + kind + '-prev">previous</button>' : "") + (page.next ? '<button id="' + kind + '-next">next</button>' : "") +
    '<span class="muted">page ' + stack.length + "</span>";
  const prev = document.getElementById(kind + "-prev");
  if (prev) prev.onclick = () => { stack.pop(); renderRows(id, kind).catch(fail); };
  const next = document.getElementById(kind + "-next");
  if (next) next.onclick = () => { stack.push(page.next); renderRows(id, kind).catch(fail); };
}

// ------------------------------------------------------------------------------------------
// One config.
async function renderConfig(name) {
  document.getElementById("nav").innerHTML = link("/", "all jobs") + " · " + link("/", "this config's jobs", { config: name }, "config-jobs");
  every(2000, async (stale) => {
    try {
      const v = (await api("/api/configs/" + encodeURIComponent(name))).body;
      if (stale()) return;
      const b = v.backlog;
      const cut = (c) => (c ? esc(ejson(c.key)) : '<span class="muted">-</span>');
      const lanes = [{ lane: name + " (full and incremental)", claimedUpTo: b.claimedUpTo, claimedBy: b.claimedBy, completedUpTo: b.completedUpTo, completedBy: b.completedBy }]
        .concat(b.backfills.map((f) => ({ lane: "backfill " + f.lane + " (pass " + f.pass + ")", claimedUpTo: f.claimedUpTo, completedUpTo: f.completedUpTo, completedBy: f.completedBy })));
      const byLane = {};
      for (const j of v.recentJobs.slice().reverse()) if (j.lane) (byLane[j.lane] = byLane[j.lane] || []).push(j);
      const strip = Object.entries(byLane).map(([lane, jobs]) => {
        // Each window at its place along the order key (the server's span, 0–1 of the range the
        // recent windows cover): adjacent windows of a lane sit side by side.
        const segs = jobs.filter((j) => j.span).map((j) => {
          const x = 4 + 552 * j.span.from;
          const w = Math.max(2, 552 * (j.span.to - j.span.from));
          const fill = j.complete ? "#27ae60" : j.status === "failed" ? "#eb5757" : j.status === "succeeded" ? "#9ad0b0" : "#56ccf2";
          return '<rect class="window" x="' + x.toFixed(1) + '" y="4" width="' + w.toFixed(1) + '" height="18" fill="' + fill + '" stroke="#fff"><title>' +
            esc(j.jobId + " #" + j.seq + " " + j.status + ": " + (j.from || "start") + " → " + (j.to || "end") + ", " + j.records + " records") + "</title></rect>";
        }).join("");
        return "<tr><td>" + esc(lane) + '</td><td><svg class="windows" width="560" height="26" role="img" aria-label="' + esc("windows of " + lane) + '">' + segs + "</svg></td></tr>";
      }).join("");
      document.getElementById("view").innerHTML =
        '<h2 id="config-title">' + esc(v.name) + ' <span class="muted">' + esc(v.hash) + "</span></h2>" +
        (v.description ? "<p>" + esc(v.description) + "</p>" : "") +
        '<p id="config-facts">' + esc(v.source) + ", order key " + esc(v.orderBy) + ", completion " + esc(v.completion) + ", maxInFlight " + esc(v.maxInFlight) +
        ", chunks of ≤" + esc(v.chunking.maxRecords) + " records" + (v.chunking.maxWeight ? " / weight " + esc(v.chunking.maxWeight) : "") + "</p>" +
        '<p id="schedule">' + (v.schedule ? "scheduled " + esc(v.schedule.cron) + " (" + esc(v.schedule.timezone) + "), " + esc(v.schedule.iterations) + " iteration(s); next run " +
          (v.schedule.nextRunAt ? esc(stamp(v.schedule.nextRunAt)) + " UTC" : '<span class="error">' + esc(v.schedule.problem || "unknown") + "</span>") : "no schedule") + "</p>" +
        '<p id="backlog">backlog: ' + esc(b.records) + " record(s) past the watermark" + (b.weight !== undefined ? ", weight " + esc(b.weight) : "") +
        (v.fullJobLock ? "; full-job lock held by " + link(jobPath(v.fullJobLock.job), v.fullJobLock.job) + " since " + esc(stamp(v.fullJobLock.since)) : "; no full job running") + "</p>" +
        '<h2>lanes</h2><table id="lanes"><tr><th>lane</th><th>claimed up to</th><th>watermark (completed up to)</th><th>by</th></tr>' +
        lanes.map((l) => '<tr class="lane"><td>' + esc(l.lane) + "</td><td>" + cut(l.claimedUpTo) + "</td><td>" + cut(l.completedUpTo) + "</td><td>" + (l.completedBy ? link(jobPath(l.completedBy), l.completedBy) : "-") + "</td></tr>").join("") +
        "</table>" +
        '<h2>windows of recent jobs along the order key</h2><table id="window-strips">' + (strip || '<tr><td class="muted">no jobs in a lane yet</td></tr>') + "</table>" +
        '<table id="recent"><tr><th>job</th><th>mode</th><th>status</th><th>from (after)</th><th>to (up to)</th><th>lane</th><th>records</th><th>created</th></tr>' +
        v.recentJobs.map((j) => '<tr class="recent"><td>' + link(jobPath(j.jobId), j.jobId) + "</td><td>" + esc(j.mode) + "</td>" + statusCell(j.status) + '<td class="wrap">' + esc(j.from || "start") +
          '</td><td class="wrap">' + esc(j.to || "-") + "</td><td>" + (j.lane ? esc(j.lane + " #" + j.seq) : "-") + "</td><td>" + esc(j.records) + "</td><td>" + esc(stamp(j.createdAt)) + "</td></tr>").join("") + "</table>";
      updated();
    } catch (err) { fail(err); }
  });
}

// ------------------------------------------------------------------------------------------
// Routing: the view is the address's path. Links within the page change the address with
// history.pushState and draw the new view without a reload; back and forward redraw too. A
// reload or a shared link asks the server, which answers this same page at every view's path.
function route() {
  generation++;
  clearTimeout(timer);
  params = new URLSearchParams(location.search);
  pages.results = [null];
  pages.exceptions = [null];
  picked = null;
  document.getElementById("nav").innerHTML = "";
  document.getElementById("view").innerHTML = "";
  const path = location.pathname;
  const rest = (prefix) => { try { return decodeURIComponent(path.slice(prefix.length)); } catch (e) { return null; } };
  if (path.startsWith("/jobs/")) { const id = rest("/jobs/"); if (id) renderJob(id); else fail(new Error("bad job id in the address")); }
  else if (path.startsWith("/configs/")) { const name = rest("/configs/"); if (name) renderConfig(name); else fail(new Error("bad config name in the address")); }
  else renderJobList().catch(fail);
}
const go = (url) => { history.pushState(null, "", url); route(); window.scrollTo(0, 0); };
document.addEventListener("click", (e) => {
  const a = e.target && e.target.closest ? e.target.closest("a[href]") : null;
  // A new tab or window (modifier keys, middle button) is the browser's business.
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.getAttribute("href"), location.href);
  if (url.origin !== location.origin) return;
  e.preventDefault();
  go(url.pathname + url.search);
});
// The filter form: its fields become the list's query (empty ones left out), token and page size kept.
document.addEventListener("submit", (e) => {
  if (!e.target || e.target.id !== "filters") return;
  e.preventDefault();
  const q = new URLSearchParams();
  for (const [k, v] of new FormData(e.target)) if (v !== "") q.set(k, String(v));
  const s = q.toString();
  go("/" + (s ? "?" + s : ""));
});
window.addEventListener("popstate", route);
document.getElementById("home").setAttribute("href", href("/", {}));
route();
</script>
</body>
</html>
`;
