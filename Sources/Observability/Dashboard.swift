/// `/`: the dashboard, one self-contained page (no external assets). It polls `/api/v1` every
/// second and draws the virtual server table as `ipvsadm -Ln --rate` shows it, with a sparkline
/// of new connections per service and real server (the last five minutes, from `/api/v1/history`), the real servers coloured by their checkers
/// (green up, red down, grey unchecked) with the last result, the VRRP instances, and the event
/// log. Every name it shows goes into the page as text (`textContent`), never as markup.
enum Dashboard {
    static let page: [UInt8] = Array(html.utf8)

    static let html = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>SwiftLVS director</title>
<style>
  :root { --up: #1f8a3b; --down: #c62828; --idle: #8a8f98; --warn: #b7791f; --ink: #1d2330; --line: #e3e6eb; }
  body { font: 14px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: var(--ink); background: #f6f7f9; }
  header { background: #1d2330; color: #fff; padding: 10px 18px; display: flex; gap: 24px; align-items: baseline; flex-wrap: wrap; }
  header h1 { font-size: 18px; margin: 0; }
  header .facts span { margin-right: 16px; color: #c9ced8; }
  main { padding: 14px 18px; display: grid; gap: 16px; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px; }
  h2 { font-size: 15px; margin: 0 0 8px 0; }
  table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
  th, td { text-align: left; padding: 3px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; }
  th { font-weight: 600; color: #555c68; font-size: 12px; }
  td.num { text-align: right; }
  tr.service td { background: #eef1f6; font-weight: 600; }
  tr.server td.addr { padding-left: 24px; }
  tr.server.up td.addr::before, tr.server.down td.addr::before, tr.server.unchecked td.addr::before {
    content: ""; display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin-right: 7px; }
  tr.server.up td.addr::before { background: var(--up); }
  tr.server.down td.addr::before { background: var(--down); }
  tr.server.unchecked td.addr::before { background: var(--idle); }
  tr.server.down td { background: #fdecec; color: var(--down); }
  tr.server.quiesced td { color: var(--warn); }
  td.health { white-space: normal; max-width: 28em; font-size: 12px; }
  .state { font-weight: 700; padding: 1px 6px; border-radius: 3px; color: #fff; background: var(--idle); }
  .state.MASTER { background: var(--up); } .state.BACKUP { background: #2b6cb0; } .state.FAULT { background: var(--down); }
  #events td.kind { font-size: 12px; text-transform: uppercase; color: #555c68; }
  #events tr.health.bad td.msg { color: var(--down); font-weight: 600; }
  #events tr.health.good td.msg { color: var(--up); }
  #banner { display: none; background: var(--down); color: #fff; padding: 6px 18px; }
  svg.spark { width: 120px; height: 22px; vertical-align: middle; }
  svg.spark polyline { fill: none; stroke: #2b6cb0; stroke-width: 1.5; }
  .empty { color: var(--idle); font-style: italic; }
</style>
</head>
<body>
<header>
  <h1>SwiftLVS director</h1>
  <div class="facts"><span id="engine"></span><span id="uptime"></span><span id="totals"></span><span id="updated"></span></div>
</header>
<div id="banner"></div>
<main>
  <section>
    <h2>Virtual servers</h2>
    <table id="table">
      <thead><tr>
        <th>Prot LocalAddress:Port / RemoteAddress:Port</th><th>Scheduler / Forward</th><th>Weight</th>
        <th>ActiveConn</th><th>InActConn</th><th>CPS</th><th>InPPS</th><th>OutPPS</th><th>InBPS</th><th>OutBPS</th>
        <th>New connections</th><th>Health</th>
      </tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>VRRP instances</h2>
    <table id="vrrp">
      <thead><tr><th>Name</th><th>Interface</th><th>VRID</th><th>State</th><th>Priority</th><th>Master</th><th>Addresses</th><th>Transitions</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Events</h2>
    <table id="events">
      <thead><tr><th>Time</th><th>Kind</th><th>What happened</th></tr></thead>
      <tbody></tbody>
    </table>
  </section>
</main>
<script>
"use strict";
const keep = 150;
const state = { after: 0, events: [], history: new Map(), historyAfter: 0 };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
function cell(row, text, cls) { const c = el("td", cls, text); row.appendChild(c); return c; }
function hostPort(a, p) { return a.indexOf(":") >= 0 ? "[" + a + "]:" + p : a + ":" + p; }
function serviceKey(s) {
  if (s.fwmark != null) return (s.family === "inet6" ? "FWM6|" : "FWM|") + s.fwmark;
  return s.protocol + "|" + s.address + "|" + s.port;
}
function serviceName(s) { return s.fwmark != null ? "FWM  " + s.fwmark + (s.family === "inet6" ? " IPv6" : "") : s.protocol + "  " + hostPort(s.address, s.port); }
function human(n) {
  const units = ["", "K", "M", "G", "T"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return (i === 0 ? String(Math.round(n)) : n.toFixed(n < 10 ? 1 : 0)) + units[i];
}
function ago(seconds) {
  if (seconds == null) return "not checked yet";
  if (seconds < 1) return "just now";
  if (seconds < 120) return Math.round(seconds) + "s ago";
  return Math.round(seconds / 60) + "m ago";
}
function duration(s) {
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return (d ? d + "d " : "") + (d || h ? h + "h " : "") + m + "m";
}
async function get(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + " answered " + r.status);
  return r.json();
}
// The sparklines: lvsd samples new connections per second every few seconds; the page takes
// what it has not seen yet on each poll.
function addHistory(page) {
  if (!page.times.length) return;
  state.historyAfter = page.times[page.times.length - 1];
  for (const [key, values] of Object.entries(page.series)) {
    let series = state.history.get(key);
    if (!series) { series = []; state.history.set(key, series); }
    series.push(...values);
    if (series.length > keep) series.splice(0, series.length - keep);
  }
}
function series(key) { return state.history.get(key) || []; }
function spark(values) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  // Up to five minutes wide; a young page shows its first minute across the whole line.
  const width = Math.max(30, values.length);
  svg.setAttribute("viewBox", "0 0 " + width + " 22");
  svg.setAttribute("preserveAspectRatio", "none");
  const line = document.createElementNS(ns, "polyline");
  const top = Math.max(1, ...values);
  const start = width - values.length;
  line.setAttribute("points", values.map((v, i) => (start + i) + "," + (21 - 20 * v / top).toFixed(1)).join(" "));
  svg.appendChild(line);
  const title = document.createElementNS(ns, "title");
  title.textContent = values.length ? "new connections: now " + human(values[values.length - 1]) + "/s, peak " + human(top) + "/s" : "";
  svg.appendChild(title);
  return svg;
}
function statCells(row, s) {
  cell(row, s.activeConnections != null ? s.activeConnections : "", "num");
  cell(row, s.inactiveConnections != null ? s.inactiveConnections : "", "num");
  const st = s.stats;
  for (const v of [st.connectionsPerSecond, st.inPacketsPerSecond, st.outPacketsPerSecond, st.inBytesPerSecond, st.outBytesPerSecond]) cell(row, human(v), "num");
}
function healthText(checks) {
  return checks.map(c => c.checker + " " + (c.up ? "up" : "DOWN: " + (c.lastFailure || "failed")) + ", " + ago(c.lastProbeAgeSeconds)).join("; ");
}
function renderTable(table, checkers) {
  const health = new Map();
  for (const c of checkers) {
    const key = serviceKey(c.service) + ">" + hostPort(c.server.address, c.server.port);
    if (!health.has(key)) health.set(key, []);
    health.get(key).push(c);
  }
  const body = document.querySelector("#table tbody");
  const rows = [];
  for (const s of table.services) {
    const key = serviceKey(s);
    const r = el("tr", "service");
    cell(r, serviceName(s), "addr");
    const flags = s.flags.length ? " (" + s.flags.join(",") + ")" : "";
    cell(r, s.scheduler + flags + (s.persistent != null ? " persistent " + s.persistent : ""));
    cell(r, "");
    const active = s.servers.reduce((a, x) => a + x.activeConnections, 0), inactive = s.servers.reduce((a, x) => a + x.inactiveConnections, 0);
    statCells(r, { activeConnections: active, inactiveConnections: inactive, stats: s.stats });
    cell(r, "").appendChild(spark(series(key)));
    cell(r, "");
    rows.push(r);
    for (const rs of s.servers) {
      const name = hostPort(rs.address, rs.port);
      const checks = health.get(key + ">" + name) || [];
      const down = checks.filter(c => !c.up);
      const cls = checks.length === 0 ? "unchecked" : down.length ? "down" : "up";
      const row = el("tr", "server " + cls + (rs.weight === 0 ? " quiesced" : ""));
      row.dataset.server = name;
      row.dataset.health = cls;
      cell(row, "-> " + name, "addr");
      cell(row, rs.forward);
      cell(row, rs.weight, "num");
      statCells(row, rs);
      cell(row, "").appendChild(spark(series(key + ">" + name)));
      cell(row, checks.length === 0 ? "no checker" : healthText(checks), "health");
      rows.push(row);
    }
    // Real servers a checker took out of the table are still shown, red, with why.
    const listed = new Set(s.servers.map(rs => key + ">" + hostPort(rs.address, rs.port)));
    for (const [hkey, checks] of health) {
      if (!hkey.startsWith(key + ">") || listed.has(hkey)) continue;
      const name = hkey.slice(key.length + 1);
      const row = el("tr", "server down withdrawn");
      row.dataset.server = name;
      row.dataset.health = "down";
      cell(row, "-> " + name, "addr");
      cell(row, "withdrawn");
      for (let i = 0; i < 9; i++) cell(row, "");
      cell(row, healthText(checks), "health");
      rows.push(row);
    }
  }
  if (rows.length === 0) { const r = el("tr"); const c = cell(r, "No virtual services: add one with ipvsadm -A or keepalived.conf.", "empty"); c.colSpan = 12; rows.push(r); }
  body.replaceChildren(...rows);
}
function renderVRRP(list) {
  const body = document.querySelector("#vrrp tbody");
  const rows = list.map(v => {
    const r = el("tr");
    cell(r, v.name); cell(r, v.interface); cell(r, v.virtualRouterID, "num");
    cell(r, "").appendChild(el("span", "state " + v.state, v.state));
    cell(r, v.priority === v.configuredPriority ? v.priority : v.priority + " (" + v.configuredPriority + ")", "num");
    cell(r, v.master || ""); cell(r, v.addresses.join(" ")); cell(r, v.transitions, "num");
    return r;
  });
  if (rows.length === 0) { const r = el("tr"); const c = cell(r, "No VRRP instances.", "empty"); c.colSpan = 8; rows.push(r); }
  body.replaceChildren(...rows);
}
function renderEvents(page) {
  if (page.events.length) state.after = page.events[page.events.length - 1].sequence;
  for (const e of page.events) state.events.unshift(e);
  state.events.length = Math.min(state.events.length, 300);
  const body = document.querySelector("#events tbody");
  const rows = state.events.map(e => {
    const bad = /fail|down|lost|removing|fault|refused|error/i.test(e.message), good = /success|adding|gained|master state/i.test(e.message);
    const r = el("tr", e.kind + (bad ? " bad" : good ? " good" : ""));
    cell(r, new Date(e.time * 1000).toLocaleTimeString()); cell(r, e.kind, "kind"); cell(r, e.message, "msg");
    return r;
  });
  if (rows.length === 0) { const r = el("tr"); const c = cell(r, "Nothing yet.", "empty"); c.colSpan = 3; rows.push(r); }
  body.replaceChildren(...rows);
}
async function tick() {
  const banner = document.getElementById("banner");
  try {
    const [status, table, checkers, vrrp, events, history] = await Promise.all([
      get("/api/v1/status"), get("/api/v1/services"), get("/api/v1/checkers"), get("/api/v1/vrrp"), get("/api/v1/events?after=" + state.after),
      get("/api/v1/history?after=" + state.historyAfter)]);
    addHistory(history);
    const now = Date.now();
    document.getElementById("engine").textContent = "lvsd " + status.version + ", " + status.engine + " engine";
    document.getElementById("uptime").textContent = "up " + duration(now / 1000 - status.startTime);
    document.getElementById("totals").textContent = status.services + " services, " + status.realServers + " real servers, " + status.connectionEntries + " connections";
    document.getElementById("updated").textContent = "updated " + new Date(now).toLocaleTimeString();
    renderTable(table, checkers);
    renderVRRP(vrrp);
    renderEvents(events);
    banner.style.display = "none";
  } catch (e) {
    banner.textContent = "Cannot reach lvsd: " + e.message;
    banner.style.display = "block";
  }
  setTimeout(tick, 1000);
}
tick();
</script>
</body>
</html>
"""#
}
