// jumbo's dashboard: plain JavaScript over the REST API (docs/api.md).
// The token comes from the URL's fragment (#token=jbt_..., never sent to
// the server) or the form, and is kept for this tab only.
"use strict";
(function () {
  const $ = (s) => document.querySelector(s);
  const frag = new URLSearchParams(location.hash.slice(1));
  if (frag.get("token")) {
    sessionStorage.setItem("jumbo-token", frag.get("token"));
    history.replaceState(null, "", location.pathname);
  }
  let token = sessionStorage.getItem("jumbo-token") || "";
  const samples = []; // [time, bytes moved by running transfers + finished ones]
  let lastLogJob = null;

  async function api(path) {
    const r = await fetch(path, { headers: token ? { Authorization: "Bearer " + token } : {} });
    if (r.status === 401) { $("#login").hidden = false; throw new Error("a token is needed"); }
    if (!r.ok) throw new Error(path + ": HTTP " + r.status);
    return r.json();
  }
  function text(v) { return v === undefined || v === null ? "" : String(v); }
  function cell(tr, v, cls) { const td = document.createElement("td"); td.textContent = text(v); if (cls) td.className = cls; tr.appendChild(td); return td; }
  function bytes(n) { const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0; while (n >= 1024 && i < 4) { n /= 1024; i++; } return (i ? n.toFixed(1) : n) + " " + u[i]; }
  function fill(id, rows, draw) { const tb = $(id + " tbody"); tb.replaceChildren(); rows.forEach((r) => { const tr = document.createElement("tr"); draw(tr, r); tb.appendChild(tr); }); }

  function chart() {
    const c = $("#chart"), g = c.getContext("2d"), W = c.width, H = c.height;
    g.clearRect(0, 0, W, H);
    const rates = [];
    for (let i = 1; i < samples.length; i++) {
      const dt = samples[i][0] - samples[i - 1][0];
      rates.push(dt > 0 ? Math.max(0, (samples[i][1] - samples[i - 1][1]) * 8 / dt / 1e9) : 0);
    }
    const max = Math.max(0.001, ...rates) * 1.15;
    g.strokeStyle = "#e4e7ec"; g.beginPath();
    for (let y = 0; y <= 4; y++) { g.moveTo(0, H * y / 4); g.lineTo(W, H * y / 4); }
    g.stroke();
    g.strokeStyle = "#2e6bd1"; g.lineWidth = 2; g.beginPath();
    rates.forEach((r, i) => { const x = W - (rates.length - 1 - i) * (W / 120), y = H - r / max * H; i ? g.lineTo(x, y) : g.moveTo(x, y); });
    g.stroke();
    const now = rates.length ? rates[rates.length - 1] : 0;
    $("#rate").textContent = "throughput now " + now.toFixed(3) + " Gbit/s (scale " + max.toFixed(3) + " Gbit/s, last 2 minutes)";
  }

  async function refresh() {
    try {
      const h = await (await fetch("/api/v1/health")).json();
      $("#site").textContent = h.site + " · " + h.version;
      const t = await api("/api/v1/transfers"), j = await api("/api/v1/jobs");
      $("#health").textContent = "connected"; $("#health").className = "pill ok";
      let moved = 0;
      t.transfers.forEach((x) => { moved += x.progress ? x.progress.bytes_done : (x.bytes_sent || 0); });
      samples.push([performance.now() / 1000, moved]);
      if (samples.length > 121) samples.shift();
      chart();
      fill("#transfers", t.transfers, (tr, x) => {
        tr.dataset.id = x.id;
        cell(tr, x.id, "mono"); cell(tr, x.op); cell(tr, x.state, "state-" + x.state);
        cell(tr, x.op === "send" ? x.request.dest : x.request.source, "mono"); cell(tr, x.attempts);
        const td = cell(tr, "");
        if (x.progress) { const p = document.createElement("progress"); p.max = x.progress.bytes_total || 1; p.value = x.progress.bytes_done; td.appendChild(p); td.append(" " + bytes(x.progress.bytes_done)); }
        else if (x.bytes_sent !== undefined) td.textContent = bytes(x.bytes_sent);
        cell(tr, x.gbps !== undefined ? x.gbps.toFixed(2) + " Gbit/s" : ""); cell(tr, x.error, "bad");
      });
      fill("#jobs", j.jobs, (tr, x) => {
        tr.className = "clickable"; tr.dataset.id = x.id;
        cell(tr, x.id, "mono"); cell(tr, x.state, "state-" + x.state); cell(tr, x.image, "mono");
        cell(tr, (x.spec.args || []).join(" ").slice(0, 80), "mono"); cell(tr, x.exit_code); cell(tr, x.reason);
        tr.onclick = () => { lastLogJob = x.id; showLog(); };
      });
      if (lastLogJob) showLog();
      const d = await api("/api/v1/datasets");
      fill("#datasets", d.datasets, (tr, x) => {
        tr.className = "clickable"; tr.dataset.path = x.path;
        cell(tr, x.path, "mono"); cell(tr, bytes(x.size)); cell(tr, x.digest, "mono");
        cell(tr, x.source === "job" ? "job " + x.job : x.source === "transfer" ? "sent by " + x.origin : x.source);
        tr.onclick = async () => { const p = await api("/api/v1/provenance?path=" + encodeURIComponent(x.path)); $("#provenance").hidden = false; $("#provenance").textContent = JSON.stringify(p, null, 2); };
      });
      const r = await api("/api/v1/rules");
      fill("#rules", r.rules, (tr, x) => { cell(tr, x.name); cell(tr, x.glob, "mono"); cell(tr, x.image, "mono"); cell(tr, x.output, "mono"); });
      const pe = await api("/api/v1/peers");
      fill("#peers", pe.peers, (tr, x) => { cell(tr, x.name); cell(tr, x.address, "mono"); cell(tr, x.fingerprint.slice(0, 23) + "…", "mono"); });
    } catch (e) {
      $("#health").textContent = e.message; $("#health").className = "pill bad";
    }
  }
  async function showLog() {
    const r = await fetch("/api/v1/jobs/" + lastLogJob + "/logs?stream=stdout", { headers: { Authorization: "Bearer " + token } });
    const e = await fetch("/api/v1/jobs/" + lastLogJob + "/logs?stream=stderr", { headers: { Authorization: "Bearer " + token } });
    $("#log").hidden = false;
    $("#log").textContent = "job " + lastLogJob + " (" + r.headers.get("X-Jumbo-Job-State") + ")\n" + (await r.text()) + (await e.text());
  }
  $("#login").onsubmit = (ev) => { ev.preventDefault(); token = $("#token").value.trim(); sessionStorage.setItem("jumbo-token", token); $("#login").hidden = true; refresh(); };
  refresh();
  setInterval(refresh, 1000);
})();
