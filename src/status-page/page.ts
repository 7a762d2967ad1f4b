/**
 * The status page: one self-contained HTML document (no build step, no external assets) that
 * polls the JSON API every second and draws jobs with progress bars, the selected job's chunk
 * timeline, its failures and its exceptions, and the workers (processes running steps).
 */
export const STATUS_PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>chunkrelay status</title>
<style>
  body { font: 14px system-ui, sans-serif; margin: 24px; color: #1d232a; background: #f7f8fa; }
  h1 { font-size: 20px; margin: 0 0 16px; }
  h2 { font-size: 16px; margin: 24px 0 8px; }
  table { border-collapse: collapse; width: 100%; background: #fff; }
  th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #e4e7eb; white-space: nowrap; }
  tr.job { cursor: pointer; } tr.job:hover, tr.selected { background: #eef4ff; }
  .bar { width: 200px; height: 12px; background: #e4e7eb; border-radius: 6px; overflow: hidden; display: inline-block; vertical-align: middle; }
  .fill { display: block; height: 100%; background: #2f80ed; }
  .status-succeeded, .status-live { color: #1e8e3e; } .status-failed, .status-stale { color: #d93025; } .status-running, .status-planning { color: #2f80ed; } .status-stopped { color: #6b7280; }
  .timeline { display: flex; flex-wrap: wrap; gap: 2px; background: #fff; padding: 8px; }
  .chunk { width: 14px; height: 14px; border-radius: 2px; }
  .c-pending { background: #d0d5dd; } .c-dispatching { background: #f2c94c; } .c-sent { background: #56ccf2; }
  .c-processed { background: #27ae60; } .c-failed { background: #eb5757; }
  .muted { color: #6b7280; } .error { color: #d93025; }
</style>
</head>
<body>
<h1>chunkrelay <span class="muted" id="updated"></span></h1>
<table id="jobs"><thead><tr><th>job</th><th>config</th><th>mode</th><th>status</th><th>progress</th><th>records</th><th>exceptions</th><th>created</th></tr></thead><tbody></tbody></table>
<h2>workers</h2>
<table id="workers"><thead><tr><th>name</th><th>kind</th><th>host</th><th>pid</th><th>started</th><th>heartbeat</th><th>chunks</th><th>records</th><th>succeeded</th><th>failed</th><th>state</th></tr></thead><tbody></tbody></table>
<div id="detail"></div>
<script>
const token = new URLSearchParams(location.search).get("token");
const headers = token ? { authorization: "Bearer " + token } : {};
let selected = null;
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const api = async (path) => {
  const res = await fetch(path, { headers });
  if (!res.ok) throw new Error(path + ": HTTP " + res.status);
  return res.json();
};
const date = (d) => (d && d.$date ? new Date(d.$date).toLocaleTimeString() : d ? new Date(d).toLocaleTimeString() : "-");
async function refresh() {
  try {
    const jobs = await api("api/jobs");
    if (!selected && jobs.length) selected = jobs[0].jobId;
    const rows = await Promise.all(jobs.map(async (j) => {
      let pct = j.records ? Math.round((100 * (j.processed + j.exceptions)) / j.records) : 0;
      let done = j.processed + j.exceptions;
      if (j.status === "running" || j.status === "planning") {
        const r = await api("api/jobs/" + encodeURIComponent(j.jobId));
        done = r.progress.processedRecords + r.progress.failedRecords;
        pct = r.progress.totalRecords ? Math.round((100 * done) / r.progress.totalRecords) : 0;
      }
      return '<tr class="job' + (j.jobId === selected ? " selected" : "") + '" data-job="' + esc(j.jobId) + '"><td>' + esc(j.jobId) +
        "</td><td>" + esc(j.config) + "</td><td>" + esc(j.mode) + (j.partitioning ? ' <span class="muted">' + esc(j.partitioning) + "</span>" : "") + '</td><td class="status-' + esc(j.status) + '">' + esc(j.status) +
        '</td><td><span class="bar"><span class="fill" style="width:' + pct + '%"></span></span> <span class="pct">' + pct + "%</span></td><td>" +
        done + "/" + j.records + "</td><td>" + j.exceptions + "</td><td>" + date(j.createdAt) + "</td></tr>";
    }));
    document.querySelector("#jobs tbody").innerHTML = rows.join("");
    document.querySelectorAll("tr.job").forEach((tr) => tr.addEventListener("click", () => { selected = tr.dataset.job; refresh(); }));
    await renderWorkers();
    if (selected) await renderJob(selected);
    document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (err) {
    document.getElementById("updated").innerHTML = '<span class="error">' + esc(err.message) + "</span>";
  }
}
async function renderWorkers() {
  const workers = await api("api/workers?all=true");
  document.querySelector("#workers tbody").innerHTML = workers.length
    ? workers.map((w) => '<tr class="worker state-' + esc(w.state) + '"><td>' + esc(w.name) + "</td><td>" + esc(w.kind) + "</td><td>" + esc(w.host) +
      "</td><td>" + esc(w.pid) + "</td><td>" + date(w.startedAt) + "</td><td>" + esc(Math.round(w.heartbeatAgeMs / 1000)) + " s ago</td><td>" +
      esc(w.chunks) + "</td><td>" + esc(w.records) + "</td><td>" + esc(w.succeeded) + "</td><td>" + esc(w.failed) + '</td><td class="status-' + esc(w.state) + '">' + esc(w.state) + "</td></tr>").join("")
    : '<tr><td colspan="11" class="muted">no workers in the last 10 minutes</td></tr>';
}
async function renderJob(id) {
  const r = await api("api/jobs/" + encodeURIComponent(id));
  const ex = await api("api/exceptions?job=" + encodeURIComponent(id));
  const p = r.progress;
  const failures = r.chunks.filter((c) => c.lastError);
  document.getElementById("detail").innerHTML =
    "<h2>" + esc(id) + ' <span class="status-' + esc(r.job.status) + '">' + esc(r.job.status) + "</span></h2>" +
    '<p id="summary">' + (p.processedRecords + p.failedRecords) + "/" + p.totalRecords + " records, " + p.doneChunks + "/" + p.totalChunks +
    " chunks, " + p.inFlightChunks + " in flight, " + r.recordsPerSecond + " records/s, config " + esc(r.job.config) + " (" + esc(r.job.configHash) + ")" +
    (r.driftedChunks.length ? ', <span class="error">chunks sent under another config: ' + r.driftedChunks.join(", ") + "</span>" : "") + "</p>" +
    '<p id="window">mode ' + esc(r.job.mode) + "<br>" + r.windowLines.map(esc).join("<br>") + "</p>" +
    '<h2>chunks</h2><div class="timeline">' + r.chunks.map((c) => '<div class="chunk c-' + esc(c.status) + '" title="chunk ' + c.chunk + ": " + esc(c.status) +
      ", attempt " + c.attempt + ", " + c.recordCount + ' records"></div>').join("") + "</div>" +
    "<h2>steps</h2><table><tr><th>step</th><th>runs</th><th>ok</th><th>failed</th><th>p50</th><th>p95</th><th>max</th></tr>" +
    r.steps.map((s) => "<tr><td>" + esc(s.task) + "</td><td>" + s.invocations + "</td><td>" + s.succeeded + "</td><td>" + s.failed + "</td><td>" + s.p50Ms +
      " ms</td><td>" + s.p95Ms + " ms</td><td>" + s.maxMs + " ms</td></tr>").join("") + "</table>" +
    "<h2>failures</h2>" + (failures.length ? "<table>" + failures.map((c) => "<tr><td>chunk " + c.chunk + '</td><td class="error">' + esc(c.lastError) + "</td></tr>").join("") + "</table>" : '<p class="muted">none</p>') +
    "<h2>exceptions (" + ex.length + ")</h2>" + (ex.length ? "<table>" + ex.slice(0, 50).map((e) => "<tr><td>" + esc(JSON.stringify(e.recordId)) + "</td><td>chunk " + e.chunk + "</td><td>" + esc(e.reason) + "</td></tr>").join("") + "</table>" : '<p class="muted">none</p>');
}
refresh();
setInterval(refresh, 1000);
</script>
</body>
</html>
`;
