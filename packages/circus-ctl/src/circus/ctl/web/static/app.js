// circushttpd page: one websocket to circushttpd; everything else is drawn from its messages.
"use strict";

const HISTORY = 60;          // points kept per chart (one per poll)
const MAX_EVENTS = 300;
const MAX_LOG_LINES = 1000;
const CALL_TIMEOUT_MS = 90000;
const SIGNALS = ["HUP", "TERM", "INT", "QUIT", "USR1", "USR2", "KILL"];

const daemons = new Map();   // index -> {el, tbody, watchers: Map(name -> watcher view)}
const pending = new Map();   // call id -> {resolve}
let socket = null;
let nextId = 1;
let retryDelay = 500;
let readOnly = true;         // until circushttpd says otherwise (hello)

// ------------------------------------------------------------------ formatting

function fmtPercent(v) { return v == null ? "–" : v.toFixed(1) + " %"; }
function fmtBytes(v) {
  if (v == null) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : v.toFixed(0)) + " " + units[i];
}
function fmtAge(s) {
  if (s == null) return "–";
  s = Math.floor(s);
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
  if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
}
function fmtTime(t) {
  const d = t ? new Date(t * 1000) : new Date();
  return d.toTimeString().slice(0, 8) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const child of children) node.append(child);
  return node;
}

// ------------------------------------------------------------------ charts

function push(history, value) {
  history.push(value == null ? null : value);
  if (history.length > HISTORY) history.shift();
}

// The charts' CSS size (app.css, canvas.spark): not read from the canvas, since reading a
// layout size after the DOM changed forces a layout, once per chart, thousands per update.
const SPARK_W = 64, SPARK_H = 22;

function drawSpark(canvas, values, color, floor) {
  const ratio = window.devicePixelRatio || 1;
  const w = SPARK_W, h = SPARK_H;
  if (canvas.width !== w * ratio) { canvas.width = w * ratio; canvas.height = h * ratio; }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const known = values.filter((v) => v != null);
  if (!known.length) return;
  // Zero-based, with headroom: small wobbles stay small, as they are.
  const span = Math.max(...known, floor) * 1.15;
  const base = 0;
  const step = w / (HISTORY - 1);
  const x0 = w - (values.length - 1) * step;
  const y = (v) => h - 2 - ((v - base) / span) * (h - 4);
  ctx.beginPath();
  let started = false;
  values.forEach((v, i) => {
    if (v == null) { started = false; return; }
    const px = x0 + i * step;
    if (started) ctx.lineTo(px, y(v)); else { ctx.moveTo(px, y(v)); started = true; }
  });
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5;
  ctx.stroke();
  ctx.lineTo(w, h); ctx.lineTo(x0, h); ctx.closePath();
  ctx.globalAlpha = 0.12; ctx.fillStyle = color; ctx.fill(); ctx.globalAlpha = 1;
}

function metricCell(kind) {
  const value = el("span", { class: "value " + kind });
  const canvas = el("canvas", { class: "spark " + kind, width: "64", height: "22" });
  return { td: el("td", {}, el("div", { class: "metric" }, value, canvas)), value, canvas };
}

// ------------------------------------------------------------------ actions

function toast(text, kind) {
  const node = el("div", { class: "toast " + (kind || "") }, text);
  document.getElementById("toasts").append(node);
  setTimeout(() => node.remove(), kind === "error" ? 8000 : 3500);
}

function call(daemon, command, properties) {
  return new Promise((resolve) => {
    if (!socket || socket.readyState !== WebSocket.OPEN) {
      resolve({ ok: false, error: "not connected to circushttpd" });
      return;
    }
    const id = nextId++;
    // circushttpd always answers (the daemon's answer, its error or a timeout); this is
    // only a last resort so a button can never stay disabled.
    const timer = setTimeout(() => {
      if (pending.delete(id)) resolve({ ok: false, error: "no answer from circushttpd" });
    }, CALL_TIMEOUT_MS);
    pending.set(id, { resolve: (msg) => { clearTimeout(timer); resolve(msg); } });
    socket.send(JSON.stringify({ type: "call", id, daemon, command, properties }));
  });
}

function describe(answer) {
  const a = answer.answer || {};
  if (a.numprocesses != null) return "numprocesses " + a.numprocesses;
  if (a.info && typeof a.info === "object") {
    const parts = [];
    for (const key of ["started", "stopped", "kept"]) {
      if (Array.isArray(a.info[key]) && a.info[key].length) parts.push(key + " " + a.info[key].join(","));
    }
    if (parts.length) return parts.join("; ");
  }
  return "ok";
}

async function act(button, daemon, command, properties) {
  if (readOnly) return;
  button.disabled = true;
  const label = command + " " + (properties.name || "") + (properties.pid ? "[" + properties.pid + "]" : "");
  try {
    const answer = await call(daemon, command, properties);
    if (answer.ok) toast(label + ": " + describe(answer), "ok");
    else toast(label + " failed: " + answer.error, "error");
  } finally {
    button.disabled = readOnly;
  }
}

// A dashboard without a token refuses actions and output: hide and disable the buttons.
function setReadOnly(on, reason) {
  readOnly = on;
  document.body.classList.toggle("read-only", on);
  const pill = document.getElementById("read-only");
  pill.hidden = !on;
  pill.title = on ? (reason || "") : "";
  for (const node of document.querySelectorAll(".actions button, .actions select")) node.disabled = on;
}

// ------------------------------------------------------------------ daemons and watchers

function daemonView(index, endpoint) {
  let view = daemons.get(index);
  if (view) return view;
  const node = document.getElementById("daemon-template").content.firstElementChild.cloneNode(true);
  node.dataset.daemon = index;
  node.querySelector(".endpoint").textContent = endpoint;
  document.getElementById("daemons").append(node);
  view = { el: node, tbody: node.querySelector("tbody"), watchers: new Map() };
  daemons.set(index, view);
  return view;
}

function actionButton(daemon, name, command, label, title, extra) {
  const button = el("button", { "data-action": command, title: title || command }, label || command);
  button.disabled = readOnly;
  button.addEventListener("click", () => act(button, daemon, command, Object.assign({ name }, extra || {})));
  return button;
}

function watcherView(view, daemon, name) {
  let w = view.watchers.get(name);
  if (w) return w;
  const cpu = metricCell("cpu"), mem = metricCell("mem");
  const state = el("span", { class: "pill state" });
  const nprocs = el("td", { class: "num nprocs" });
  // depends_on: the watchers this one requires (started before it, stopped after it)
  const deps = el("span", { class: "muted deps", title: "depends_on: started after these, stopped before them" });
  const nameCell = el("td", { class: "name", title: "show processes" }, name, " ", deps);
  const actions = el("div", { class: "actions" },
    actionButton(daemon, name, "start"), actionButton(daemon, name, "stop"),
    actionButton(daemon, name, "restart"), actionButton(daemon, name, "reload"),
    actionButton(daemon, name, "incr", "+1", "incr: one more process"),
    actionButton(daemon, name, "decr", "−1", "decr: one process less"));
  const row = el("tr", { class: "watcher", "data-watcher": name },
    nameCell, el("td", {}, state), nprocs, cpu.td, mem.td, el("td", { class: "actions-cell" }, actions));
  w = { row, state, nprocs, deps, cpu, mem, open: false, cpuHistory: [], memHistory: [], procs: new Map() };
  nameCell.addEventListener("click", () => {
    w.open = !w.open;
    row.classList.toggle("open", w.open);
    if (!w.open) {
      for (const p of w.procs.values()) if (p.view) p.view.row.remove();
      return;
    }
    let after = row;
    const procs = [...w.procs.values()].sort((a, b) => a.pid - b.pid);
    for (const p of procs) after = showProcess(daemon, name, p, after);
  });
  view.tbody.append(row);
  view.watchers.set(name, w);
  addLogFilter(name);
  return w;
}

// A process's figures are kept for every process; its table row exists only while its
// watcher is open (thousands of hidden rows would be rewritten at every update otherwise).
function processView(daemon, name, pid) {
  const cpu = metricCell("cpu"), mem = metricCell("mem");
  const select = el("select", { title: "signal to send" }, ...SIGNALS.map((s) => el("option", { value: s }, s)));
  const send = el("button", { "data-action": "signal", title: "send the signal to this process" }, "signal");
  select.disabled = send.disabled = readOnly;
  send.addEventListener("click", () => act(send, daemon, "signal", { name, pid, signum: select.value }));
  const age = el("span", { class: "muted age" });
  const health = el("span", { class: "pill health" });
  const statusText = el("span", { class: "muted status-text" });
  const row = el("tr", { class: "proc", "data-pid": String(pid) },
    el("td", { class: "pid" }, String(pid), " ", age), el("td", { class: "muted wid" }),
    el("td", { class: "health-cell" }, health, " ", statusText), cpu.td, mem.td,
    el("td", { class: "actions-cell" }, el("div", { class: "actions" }, select, send)));
  return { row, age, health, statusText, wid: row.querySelector(".wid"), cpu, mem };
}

// Fill (making it if needed) the row of process state ``p`` and place it after ``after``.
function showProcess(daemon, name, p, after) {
  const v = p.view || (p.view = processView(daemon, name, p.pid));
  const proc = p.data;
  v.age.textContent = fmtAge(proc.age);
  v.wid.textContent = proc.wid == null ? "" : "wid " + proc.wid;
  // readiness, for a watcher with readiness or liveness: the state and its STATUS= text
  v.health.style.display = proc.health == null ? "none" : "";  // .pill sets display
  v.health.textContent = proc.health || "";
  v.health.className = "pill health " + (proc.health || "");
  v.statusText.textContent = proc.status_text || "";
  v.cpu.value.textContent = fmtPercent(proc.cpu);
  v.mem.value.textContent = fmtBytes(proc.rss);
  drawSpark(v.cpu.canvas, p.cpuHistory, "#3b6fd8", 5);
  drawSpark(v.mem.canvas, p.memHistory, "#8b5cf6", 1 << 20);
  if (after.nextSibling !== v.row) after.after(v.row);
  return v.row;
}

function onSnapshot(msg) {
  const view = daemonView(msg.daemon, msg.endpoint);
  view.el.classList.toggle("disconnected", !msg.connected);
  const pill = view.el.querySelector(".daemon-head .state");
  pill.textContent = msg.connected ? "connected" : "disconnected";
  pill.className = "pill state " + (msg.connected ? "on" : "off");
  view.el.querySelector(".daemon-head .error").textContent = msg.connected ? "" : (msg.error || "");
  if (!msg.connected) return;   // keep the last table, greyed, until it answers again
  const d = msg.circusd;
  view.el.querySelector(".circusd").textContent = d
    ? "circusd pid " + d.pid + " · CPU " + fmtPercent(d.cpu) + " · " + fmtBytes(d.rss) : "";
  const seen = new Set();
  for (const watcher of msg.watchers) {
    seen.add(watcher.name);
    const w = watcherView(view, msg.daemon, watcher.name);
    w.state.textContent = watcher.status;
    w.state.className = "pill state " + watcher.status;
    const loop = watcher.crash_loop;
    w.state.title = loop ? loop.exits + " failed exits in a row, last exit code " + loop.exit_code +
      (loop.next_retry ? ", next retry at " + new Date(loop.next_retry * 1000).toLocaleTimeString() : "")
      : "";
    w.nprocs.textContent = String(watcher.numprocesses);
    const requires = watcher.depends_on || [];
    w.deps.textContent = requires.length ? "requires " + requires.join(", ") : "";
    w.cpu.value.textContent = fmtPercent(watcher.cpu);
    w.mem.value.textContent = fmtBytes(watcher.rss);
    push(w.cpuHistory, watcher.cpu); push(w.memHistory, watcher.rss);
    drawSpark(w.cpu.canvas, w.cpuHistory, "#3b6fd8", 5);
    drawSpark(w.mem.canvas, w.memHistory, "#8b5cf6", 1 << 20);
    // null: the process table did not change since the last snapshot (thousands of rows
    // are not sent, parsed and walked again every second)
    if (watcher.processes == null) continue;
    const pids = new Set();
    let after = w.row;
    for (const proc of watcher.processes) {
      pids.add(proc.pid);
      let p = w.procs.get(proc.pid);
      if (!p) w.procs.set(proc.pid, p = { pid: proc.pid, view: null, cpuHistory: [], memHistory: [] });
      p.data = proc;
      push(p.cpuHistory, proc.cpu); push(p.memHistory, proc.rss);
      if (w.open) after = showProcess(msg.daemon, watcher.name, p, after);
    }
    for (const [pid, p] of w.procs) {
      if (!pids.has(pid)) { if (p.view) p.view.row.remove(); w.procs.delete(pid); }
    }
  }
  for (const [name, w] of view.watchers) {
    if (!seen.has(name)) {
      w.row.remove();
      for (const p of w.procs.values()) if (p.view) p.view.row.remove();
      view.watchers.delete(name);
    }
  }
}

// ------------------------------------------------------------------ events and output

function addEvent(msg) {
  const list = document.getElementById("events");
  const payload = Object.entries(msg.payload || {})
    .filter(([k]) => k !== "time").map(([k, v]) => k + "=" + v).join(" ");
  const prefix = daemons.size > 1 ? "#" + msg.daemon + " " : "";
  list.prepend(el("li", { "data-event": msg.event },
    el("span", { class: "muted" }, fmtTime(msg.payload && msg.payload.time) + " "),
    el("span", { class: "topic" }, prefix + msg.topic), " " + payload));
  while (list.childElementCount > MAX_EVENTS) list.lastElementChild.remove();
}

function addLogFilter(name) {
  const select = document.getElementById("log-filter");
  if ([...select.options].some((o) => o.value === name)) return;
  select.append(el("option", { value: name }, name));
}

function addOutput(msg) {
  const logs = document.getElementById("logs");
  const filter = document.getElementById("log-filter").value;
  const lines = String(msg.data || "").replace(/\n$/, "").split("\n");
  for (const line of lines) {
    const who = el("span", { class: "who" }, msg.watcher + "[" + msg.pid + "]");
    const node = el("div", { class: "line " + msg.stream, "data-watcher": msg.watcher },
      el("span", { class: "ts" }, fmtTime(msg.time) + " "), who,
      (msg.stream === "stderr" ? " ! " : " | ") + line);
    node.hidden = Boolean(filter) && filter !== msg.watcher;
    logs.append(node);
  }
  while (logs.childElementCount > MAX_LOG_LINES) logs.firstElementChild.remove();
  if (document.getElementById("log-follow").checked) logs.scrollTop = logs.scrollHeight;
}

function addNote(text) {
  document.getElementById("logs").append(el("div", { class: "line note" }, "… " + text));
}

document.getElementById("logout").addEventListener("click", logout);
document.getElementById("log-filter").addEventListener("change", (e) => {
  for (const node of document.querySelectorAll("#logs .line")) {
    node.hidden = Boolean(e.target.value) && node.dataset.watcher !== e.target.value;
  }
});

// ------------------------------------------------------------------ the websocket

function setLink(on, text) {
  const pill = document.getElementById("link-status");
  pill.textContent = text;
  pill.className = "pill " + (on ? "on" : "off");
}

function onMessage(event) {
  const msg = JSON.parse(event.data);
  switch (msg.type) {
    case "hello":
      document.getElementById("version").textContent = "circushttpd " + msg.version;
      document.getElementById("logout").hidden = !msg.login;
      setReadOnly(Boolean(msg.read_only), msg.read_only_reason);
      for (const d of msg.daemons) daemonView(d.index, d.endpoint);
      document.getElementById("events").replaceChildren();
      document.getElementById("logs").replaceChildren();
      if (msg.read_only) addNote("read-only dashboard: the processes' output needs a login token");
      break;
    case "snapshot": onSnapshot(msg); break;
    case "event": addEvent(msg); break;
    case "outputs":
      for (const line of msg.lines) addOutput(line);
      if (msg.dropped) addNote(msg.dropped + " lines skipped (too fast to show)");
      break;
    case "backlog":
      for (const e of msg.events) addEvent(e);
      for (const line of msg.logs) addOutput(line);
      break;
    case "answer": {
      const waiter = pending.get(msg.id);
      if (waiter) { pending.delete(msg.id); waiter.resolve(msg); }
      else if (!msg.ok) toast(msg.error, "error");
      break;
    }
  }
}

function connect() {
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  socket = new WebSocket(url);
  socket.addEventListener("open", () => { retryDelay = 500; setLink(true, "live"); });
  socket.addEventListener("message", onMessage);
  socket.addEventListener("close", (event) => {
    for (const waiter of pending.values()) waiter.resolve({ ok: false, error: "connection to circushttpd lost" });
    pending.clear();
    setLink(false, "circushttpd unreachable, retrying…");
    setTimeout(reconnect, retryDelay);
    retryDelay = Math.min(retryDelay * 2, 5000);
  });
}

async function reconnect() {
  // A restarted circushttpd forgets sessions: go back to the login form if it asks for one.
  try {
    const response = await fetch("/api/state", { cache: "no-store" });
    if (response.status === 401) { location.href = "/login"; return; }
  } catch (error) { /* not up yet: the websocket attempt below fails and retries */ }
  connect();
}

function logout() {
  fetch("/logout", { method: "POST" }).finally(() => { location.href = "/login"; });
}

connect();
