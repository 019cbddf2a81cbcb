// Live runs on a lab page: keeps data-connected / data-seq up to date, refuses
// frames that would skip or repeat sequence numbers (asking for the full state
// instead), sends the page's commands, and animates messages in flight.

import { parseHead } from "./wire.js";

const lives = () => document.querySelectorAll("[data-run-id]");
const liveOf = (el) => el.closest("[data-run-id]") || document.querySelector("[data-run-id]");
// A socket event belongs to a live run only if it came from inside one (a
// class page has a second socket of its own).
const runOf = (e) => (e.target.closest ? e.target.closest("[data-run-id]") : null);
const LOG_MAX = 80;

document.body.addEventListener("htmx:wsOpen", (e) => {
  const live = runOf(e);
  if (!live) return;
  live.dataset.connected = "true";
  live.querySelector(".conn-text").textContent = "live";
  // Say so if the cluster takes long to start (every worker busy).
  setTimeout(() => {
    const waiting = live.querySelector(".placeholder");
    if (waiting) waiting.textContent = "Waiting for a free worker to run this cluster; it starts as soon as one is free.";
  }, 5000);
});

document.body.addEventListener("htmx:wsClose", (e) => {
  const live = runOf(e);
  if (!live) return;
  live.dataset.connected = "false";
  live.querySelector(".conn-text").textContent = "reconnecting…";
  // htmx retries by itself after an abnormal close (1006, 1011-1013); a
  // server or proxy that shuts down cleanly says 1001 "going away": the
  // page must come back then too.
  if (e.detail.event && e.detail.event.code === 1001) {
    setTimeout(() => {
      if (document.body.contains(live) && live.dataset.connected !== "true") e.detail.socketWrapper.reconnect();
    }, 500 + Math.random() * 1500);
  }
});

// Decide, before htmx swaps anything, whether this frame follows the last one.
document.body.addEventListener("htmx:wsBeforeMessage", (e) => {
  const live = runOf(e);
  if (!live) return;
  const head = parseHead(e.detail.message);
  if (!head) return; // not a frame (e.g. an error message for this socket)
  const { seq, prev, kind } = head, cur = +live.dataset.seq;
  if (kind === "full") {
    if (seq < cur) e.preventDefault(); // older than what is on screen
    else rememberFocus(live);
    return;
  }
  if (prev !== cur) {
    e.preventDefault();
    if (seq > cur) {
      try {
        e.detail.socketWrapper.sendImmediately(JSON.stringify({ type: "sync" }));
      } catch (err) {
        /* the socket is closing: the reconnect brings the full state anyway */
      }
    }
    return;
  }
  rememberFocus(live);
});

// ---- applying a frame ---------------------------------------------------------------
// htmx's ws extension owns the socket (connecting, reconnecting, sending); the
// frames of a live run are swapped here.  htmx's own swap processes every
// swapped element and fires several events per fragment and per node: on a
// busy lab that cost more than everything else the page does.  The result is
// the same: each top-level element of the frame replaces the element with its
// id (hx-swap-oob="true") or has its children appended to it ("beforeend"),
// then htmx:wsAfterMessage fires on the live area as before.  A fragment equal
// to what is on screen (a full state after a reconnect) is left alone.
const HX_ATTRS = "[hx-get],[hx-post],[hx-put],[hx-patch],[hx-delete],[hx-trigger],[hx-ext],[ws-send],[ws-connect]";
const parser = document.createElement("template");

document.body.addEventListener("htmx:wsBeforeMessage", (e) => {
  if (e.defaultPrevented) return; // refused above: a gap, or an older full state
  const live = runOf(e);
  if (!live) return;
  e.preventDefault(); // not swapped by htmx
  const { message, socketWrapper } = e.detail;
  // Right after htmx's message handler returns, in the same task.
  queueMicrotask(() => {
    applyFrame(message);
    htmx.trigger(live, "htmx:wsAfterMessage", { message, socketWrapper });
  });
});

function applyFrame(message) {
  parser.innerHTML = message;
  for (const el of [...parser.content.children]) {
    const how = el.getAttribute("hx-swap-oob") || "true";
    el.removeAttribute("hx-swap-oob");
    const target = el.id && document.getElementById(el.id);
    if (!target) continue;
    if (how === "beforeend") {
      target.append(...el.childNodes);
      continue;
    }
    if (target.isEqualNode(el)) continue;
    target.replaceWith(el);
    if (el.matches(HX_ATTRS) || el.querySelector(HX_ATTRS)) htmx.process(el);
  }
  parser.innerHTML = "";
}

// ---- keyboard focus across frames ---------------------------------------------
// A frame replaces whole fragments (htmx's out-of-band swap does not keep the
// focus), so the focused control would be lost with every frame.  Before the
// swap we note which control has the focus; after it we focus the control with
// the same id (node buttons have stable ids), or the same action on the same
// target, or else the first button of the same node's row (crash n1 becomes
// restart n1), or the fragment itself.
function rememberFocus(live) {
  const el = document.activeElement;
  if (!el || el === document.body || !live.contains(el)) {
    live._focus = null;
    return;
  }
  const frag = el.closest("[hx-swap-oob], .cluster, .nodes, .checks, .panels, .log");
  const sel = ["action", "target", "args", "seqLink"]
    .filter((k) => el.dataset[k] !== undefined)
    .map((k) => `[data-${k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())}="${CSS.escape(el.dataset[k])}"]`)
    .join("");
  const path = [];
  for (let x = el; frag && x !== frag; x = x.parentElement) path.unshift([...x.parentElement.children].indexOf(x));
  live._focus = { el, id: el.id, frag: frag && frag.id, sel, path, node: el.dataset.target || el.closest("[data-node-row]")?.dataset.nodeRow };
}

function restoreFocus(live) {
  const f = live._focus;
  live._focus = null;
  if (!f || f.el.isConnected) return; // not swapped away: the focus is still there
  const active = document.activeElement;
  if (active && active !== document.body && active.isConnected) return; // the user moved on
  const frag = f.frag && document.getElementById(f.frag);
  const usable = (el) => el && !el.disabled && el.offsetParent !== null;
  let to = f.id && document.getElementById(f.id);
  if (!usable(to) && frag && f.sel) to = frag.querySelector(f.sel);
  if (!usable(to) && frag && !f.sel && !f.id) {
    // The same place in the new fragment (e.g. a panel that scrolls), if it is still a tab stop.
    let x = frag;
    for (const i of f.path) x = x && x.children[i];
    if (x && x.tagName === f.el.tagName && x.tabIndex >= 0) to = x;
  }
  if (!usable(to) && f.node) {
    const row = [...live.querySelectorAll("[data-node-row]")].find((r) => r.dataset.nodeRow === f.node);
    to = row && (row.querySelector("button:not([disabled])") || row.querySelector("th"));
    if (to && to.tagName === "TH") to.tabIndex = -1;
  }
  if (!usable(to) && frag) {
    frag.tabIndex = -1;
    to = frag;
  }
  if (to) to.focus({ preventScroll: true });
}

// On a phone a lab's wide table scrolls inside its panel: such a panel must be
// reachable with the keyboard to scroll it.
function scrollablePanels(rid) {
  const panels = document.getElementById(`panels-${rid}`);
  if (!panels || panels.dataset.measured || window.innerWidth > 640) return;
  panels.dataset.measured = "1"; // once per fragment: a frame that changes the panels brings a new one
  for (const box of panels.querySelectorAll(":scope > *, .panel")) {
    if (box.scrollWidth > box.clientWidth + 1 && !box.hasAttribute("tabindex")) {
      box.tabIndex = 0;
      if (box.tagName !== "SECTION") box.setAttribute("role", "group");
      if (!box.getAttribute("aria-label")) box.setAttribute("aria-label", box.querySelector("h2, h3")?.textContent.trim() || "Panel");
    }
  }
}

// ---- announcements --------------------------------------------------------------
// One polite live region per page says what matters, in words, as it happens
// (the frame builder writes each frame's few sentences in a hidden say-<run>
// element).  A busy run must not flood it: at most one announcement every
// SAY_GAP_MS, of at most SAY_MAX sentences, the rest counted.
const SAY_GAP_MS = 1500;
const SAY_MAX = 3;
const sayQueue = [];
let sayTimer = null;
let saidAt = 0;

function announcer() {
  let box = document.getElementById("announcements");
  if (!box) {
    box = document.createElement("div");
    box.id = "announcements";
    box.className = "sr-only";
    box.setAttribute("role", "status");
    box.setAttribute("aria-live", "polite");
    box.setAttribute("data-announcements", "");
    (document.querySelector("main") || document.body).prepend(box);
  }
  return box;
}
if (lives().length) announcer();

function say(sentences) {
  sayQueue.push(...sentences);
  if (!sayTimer) sayTimer = setTimeout(flushSay, Math.max(0, saidAt + SAY_GAP_MS - performance.now()));
}

function flushSay() {
  sayTimer = null;
  if (!sayQueue.length) return;
  const now = sayQueue.splice(0, sayQueue.length > SAY_MAX + 1 ? SAY_MAX : SAY_MAX + 1);
  const more = sayQueue.splice(0).length;
  let text = now.join(". ") + ".";
  if (more) text += ` And ${more} more changes: see the event log.`;
  const box = announcer();
  const p = document.createElement("p");
  p.textContent = text;
  box.append(p);
  while (box.children.length > 4) box.firstElementChild.remove();
  saidAt = performance.now();
}

function announce(live) {
  const rid = live.dataset.runId;
  const box = document.getElementById(`say-${rid}`);
  const seq = +live.dataset.seq;
  const first = live._saidSeq === undefined;
  const last = first ? seq : live._saidSeq;
  live._saidSeq = Math.max(seq, last);
  if (first || !box || !box.dataset.say || +box.dataset.seq <= last) return;
  let sentences;
  try {
    sentences = JSON.parse(box.dataset.say);
  } catch {
    return;
  }
  const many = lives().length > 1 && live.querySelector(".area-label");
  say(many ? sentences.map((x) => `${live.querySelector(".area-label").textContent.trim()}: ${x}`) : sentences);
}

document.body.addEventListener("htmx:wsAfterMessage", (e) => {
  const live = runOf(e);
  if (!live) return;
  const rid = live.dataset.runId;
  const meta = document.getElementById(`meta-${rid}`);
  if (!meta || !meta.dataset.seq) return;
  live.dataset.seq = meta.dataset.seq;
  // The clock in force, for the page's controls and for tests.
  if (meta.dataset.frozen) live.dataset.frozen = meta.dataset.frozen;
  if (meta.dataset.speed) live.dataset.speed = meta.dataset.speed;
  scrollablePanels(rid);
  restoreFocus(live);
  announce(live);
  const log = document.getElementById(`log-${rid}`);
  if (log) {
    const fresh = collapseRepeats(log);
    while (log.children.length > LOG_MAX) log.firstElementChild.remove();
    logFilter(live, log, fresh);
    const follow = live.querySelector("[data-follow]");
    if (!follow || follow.checked) followLog(rid);
  }
  const flight = document.getElementById(`flight-${rid}`);
  if (!flight || !flight.dataset.flightData || flight.dataset.done) return;
  flight.dataset.done = "1";
  try {
    animate(live, JSON.parse(flight.dataset.flightData));
  } catch (err) {
    /* a malformed animation block only costs the animation */
  }
});

// ---- the event log -----------------------------------------------------------
// Periodic traffic ("n5 sends HEARTBEAT to n1, n2, n3, n4" every 300 ms, with
// the replies and other events in between) is one line with a count: a
// message line that repeats one of the few lines just before it replaces
// that line and carries its count on (the time shown is the latest).
// Only the lines a frame added are looked at (with the few lines before them):
// the older ones were collapsed when they came.  Returns the new lines.
const REPEAT_WINDOW = 10;
const countOf = (li) => +li.dataset.repeat || 1;
const seen = new WeakSet(); // log lines already collapsed and filtered

function collapseRepeats(log) {
  const lines = [...log.children];
  let first = lines.length;
  while (first > 0 && !seen.has(lines[first - 1])) first -= 1;
  const fresh = lines.slice(first);
  const recent = lines.slice(Math.max(0, first - REPEAT_WINDOW), first)
    .map((li) => ({ li, text: li.querySelector("span")?.textContent })); // the last few lines, newest last
  for (const li of fresh) {
    seen.add(li);
    const text = li.querySelector("span")?.textContent;
    const same = li.classList.contains("traffic") ? recent.findIndex((x) => x.text === text) : -1;
    if (same >= 0) {
      const older = recent[same];
      const n = countOf(older.li) + countOf(li);
      li.dataset.repeat = n;
      let badge = li.querySelector(".repeat");
      if (!badge) badge = li.appendChild(document.createElement("b"));
      badge.className = "repeat";
      badge.textContent = ` ×${n}`;
      older.li.remove();
      recent.splice(same, 1);
    }
    recent.push({ li, text });
    if (recent.length > REPEAT_WINDOW) recent.shift();
  }
  return fresh.filter((li) => li.isConnected);
}

// Keep the newest line in view: once per animation frame, when the browser
// lays the page out anyway (not right after the swap, which would force a
// second layout).
const following = new Set();
function followLog(rid) {
  if (!following.size) {
    requestAnimationFrame(() => {
      for (const id of following) {
        const log = document.getElementById(`log-${id}`);
        if (log) log.scrollTop = log.scrollHeight;
      }
      following.clear();
    });
  }
  following.add(rid);
}

// The log's header: show one node's or one message type's lines, and the raw
// fields of each line.  Built here once per run; plain selects and a
// checkbox, so it works from the keyboard.
function logTools(live, log) {
  let tools = live.querySelector(".log-tools");
  if (tools) return tools;
  tools = document.createElement("div");
  tools.className = "log-tools";
  tools.setAttribute("role", "group");
  tools.setAttribute("aria-label", "Filter the event log");
  tools.innerHTML =
    '<label>node <select data-log-filter="node"><option value="">all</option></select></label> ' +
    '<label>type <select data-log-filter="type"><option value="">all</option></select></label> ' +
    '<label><input type="checkbox" data-log-raw> raw fields</label>';
  log.before(tools);
  tools.addEventListener("change", () => {
    const l = document.getElementById(`log-${live.dataset.runId}`);
    if (l) logFilter(live, l);
  });
  return tools;
}

function addOptions(select, values) {
  const have = new Set([...select.options].map((o) => o.value));
  for (const v of values) {
    if (!v || have.has(v)) continue;
    have.add(v);
    const opt = new Option(v, v);
    const after = [...select.options].slice(1).find((o) => o.value.localeCompare(v, "en", { numeric: true }) > 0);
    select.add(opt, after || null);
  }
}

// `lines`: only these were added since the last call (all of them if not given).
function logFilter(live, log, lines) {
  const tools = logTools(live, log);
  const nodeSel = tools.querySelector('[data-log-filter="node"]');
  const typeSel = tools.querySelector('[data-log-filter="type"]');
  const cluster = document.getElementById(`cluster-${live.dataset.runId}`);
  if (cluster && cluster !== tools._cluster) { // a new drawing: maybe new nodes
    tools._cluster = cluster;
    addOptions(nodeSel, [...cluster.querySelectorAll("g[data-node]")].map((g) => g.dataset.node));
  }
  lines = lines || [...log.children];
  addOptions(typeSel, lines.map((li) => li.dataset.type));
  const node = nodeSel.value, type = typeSel.value;
  for (const li of lines) {
    const nodes = (li.dataset.nodes || "").split(" ");
    li.hidden = (node && !nodes.includes(node)) || (type && li.dataset.type !== type);
  }
  log.classList.toggle("raw", tools.querySelector("[data-log-raw]").checked);
  log.dataset.filtered = node || type ? "true" : "false";
}

// ---- commands -------------------------------------------------------------
// Every command is POSTed in order (one queue per run, so quick clicks are all
// applied, none dropped or reordered); the verdict shows in the run's flash line
// and next to the control that was pressed.
const queues = new WeakMap();
const csrf = () => JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";

function send(live, el, action, args) {
  // Where the control was when pressed: frames may redraw it before the verdict comes.
  const base = live.getBoundingClientRect();
  const r = el && el.getBoundingClientRect ? el.getBoundingClientRect() : null;
  const spot = r ? { left: r.left - base.left, top: r.bottom - base.top } : null;
  const body = new URLSearchParams({ action, args: args.join(" ") });
  const prev = queues.get(live) || Promise.resolve();
  const next = prev.then(async () => {
    let text, ok;
    try {
      const resp = await fetch(live.dataset.commandUrl, {
        method: "POST", body, credentials: "same-origin",
        headers: { "X-CSRFToken": csrf(), "HX-Request": "true" },
      });
      text = await resp.text();
      ok = resp.ok;
    } catch (err) {
      // The request never got an answer (the server is restarting, the network
      // is down): say so; a page must not throw because its server went away.
      text = '<span class="bad" role="alert">The server could not be reached, so this was not sent. '
        + "The page reconnects by itself; try again in a moment.</span>";
      ok = false;
    }
    const flash = document.getElementById(`flash-${live.dataset.runId}`);
    if (flash) flash.innerHTML = text;
    showVerdict(live, el, spot, text, ok);
  });
  queues.set(live, next.catch(() => {}));
  return next;
}

function plain(html) {
  const div = document.createElement("div");
  div.innerHTML = html;
  return div.textContent.trim();
}

// A small note beside the button (or inside the form) that sent the command.
function showVerdict(live, el, spot, html, ok) {
  const text = plain(html);
  const form = el && el.closest && el.closest("form.cmd");
  if (form) {
    let out = form.querySelector("output");
    if (!out) out = form.insertBefore(document.createElement("output"), form.querySelector(".help"));
    out.className = ok ? "ok" : "bad";
    out.textContent = text;
    return;
  }
  if (!spot) return;
  const box = document.createElement("div");
  box.className = `verdict${ok ? "" : " bad"}`;
  box.setAttribute("role", ok ? "status" : "alert");
  box.dataset.verdict = ok ? "ok" : "refused";
  box.textContent = text;
  box.style.left = `${Math.max(0, spot.left)}px`;
  box.style.top = `${spot.top + 4}px`;
  live.querySelectorAll(".verdict").forEach((v) => v.remove());
  live.appendChild(box);
  // On a narrow screen the note stays inside the live area (no sideways scrolling).
  const room = live.clientWidth - box.offsetWidth - 4;
  if (spot.left > room) box.style.left = `${Math.max(0, room)}px`;
  setTimeout(() => box.remove(), ok ? 2500 : 5000);
}

// A command that never reached the server says so, instead of nothing.
document.body.addEventListener("htmx:sendError", (e) => {
  const live = e.target.closest?.("[data-run-id]");
  const flash = live && document.getElementById(`flash-${live.dataset.runId}`);
  if (flash) flash.innerHTML = '<span class="bad" role="alert">The server could not be reached, so this was not sent. '
    + "The page reconnects by itself; try again in a moment.</span>";
});

document.addEventListener("click", (e) => {
  const el = e.target.closest("[data-action]");
  if (!el || el.type === "submit" || el.closest("form")) return;
  e.preventDefault();
  const live = liveOf(el);
  if (live.dataset.owner !== "true") {
    document.getElementById(`flash-${live.dataset.runId}`).innerHTML =
      '<span class="bad" role="alert">You are watching someone else\'s run. Fork it to experiment.</span>';
    return;
  }
  const args = [el.dataset.target, ...(el.dataset.args || "").split(/\s+/)].filter(Boolean);
  for (const target of mirrors(live)) send(target, target === live ? el : null, el.dataset.action, args);
});

// Side by side: a command given on either run goes to both.
function mirrors(live) {
  if (!live.closest("[data-compare]")) return [live];
  return [...document.querySelectorAll("[data-compare] [data-run-id][data-owner='true']")];
}

document.addEventListener("submit", (e) => {
  const form = e.target.closest("form.cmd");
  if (!form) return;
  e.preventDefault();
  e.stopPropagation();
  const live = liveOf(form);
  const data = new FormData(form);
  const args = data.getAll("args").map(String).filter(Boolean);
  for (const target of mirrors(live)) send(target, target === live ? form : null, data.get("action"), args);
}, true);

// Clicking a node in the drawing takes you to its row of buttons.
document.addEventListener("click", (e) => {
  const g = e.target.closest("g[data-node]");
  if (!g) return;
  const live = liveOf(g);
  const row = [...live.querySelectorAll("[data-node-row]")].find((r) => r.dataset.nodeRow === g.dataset.node);
  if (row) {
    row.classList.add("flash-row");
    row.querySelector("button")?.focus();
    setTimeout(() => row.classList.remove("flash-row"), 1200);
  }
});

// ---- messages in flight ------------------------------------------------------
// Simulated messages take a few milliseconds; drawn at that speed nobody would
// see them.  Each message leaves when it left in simulated time (relative to
// the frame, at the run's speed) and travels for at least TRAVEL_MS, or for
// its own simulated transit time at the run's speed if that is longer (a slow
// link, a slowed-down clock).  A lost message dies part-way and its title
// says why.  While the clock is frozen, what is in flight stays where it is.
// With prefers-reduced-motion nothing moves: an arrow shows what was sent.
const SVG_NS = "http://www.w3.org/2000/svg";
const TRAVEL_MS = 450;
const MAX_TRAVEL_MS = 4000;
const STILL_MS = 1200; // how long a reduced-motion arrow or a dead message stays
const MAX_FLIGHTS = 120; // per run on screen; the oldest go first
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");
const flights = new Set();
let ticking = false;
// Dots move at most this often: each move repaints the drawing, and at the
// screen's full rate (60 a second) that repaint was most of a busy lab's
// main-thread time.  25 positions a second still reads as motion.
const MOVE_MS = 40;
let movedAt = 0;

// Each run has its own animation clock, which stops while the run is frozen.
function clockOf(live) {
  if (!live._flightClock) live._flightClock = { frozen: false, at: 0, offset: 0 };
  return live._flightClock;
}
function clockNow(live) {
  const c = clockOf(live);
  return c.frozen ? c.at : performance.now() - c.offset;
}
function setFrozen(live, frozen) {
  const c = clockOf(live);
  if (frozen === c.frozen) return;
  if (frozen) c.at = performance.now() - c.offset;
  else c.offset = performance.now() - c.at;
  c.frozen = frozen;
}

function flightLayer(live) {
  let layer = live.querySelector(".flight-layer");
  if (!layer) {
    const cluster = document.getElementById(`cluster-${live.dataset.runId}`);
    if (!cluster) return null;
    layer = document.createElementNS(SVG_NS, "svg");
    layer.setAttribute("class", "flight-layer");
    layer.setAttribute("viewBox", "0 0 100 60");
    cluster.parentElement.style.position = "relative";
    cluster.after(layer);
  }
  return layer;
}

function svg(parent, name, attrs) {
  const el = parent.appendChild(document.createElementNS(SVG_NS, name));
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

// One colour per message type (losses are red), the same on every lab.
const TYPE_COLOURS = ["#2a62c9", "#6b3fc6", "#18794e", "#b26b00", "#0e7490", "#9d174d", "#4d7c0f"];
function typeColour(type) {
  let h = 0;
  for (const ch of String(type)) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return TYPE_COLOURS[h % TYPE_COLOURS.length];
}

function flightTitle(f) {
  return `${f.type} ${f.src} → ${f.dst}${f.count > 1 ? ` ×${f.count}` : ""}${f.lost ? ` lost: ${f.lost}` : ""}`;
}

// From the edge of the sender's circle to the edge of the receiver's.
const NODE_R = 4.6;
function ends(a, b) {
  const dx = b[0] - a[0], dy = b[1] - a[1], n = Math.hypot(dx, dy);
  if (n < 2 * NODE_R + 1) return [a, b];
  const ux = (dx / n) * NODE_R, uy = (dy / n) * NODE_R;
  return [[a[0] + ux, a[1] + uy], [b[0] - ux, b[1] - uy]];
}

function newFlight(live, layer, where, m) {
  const [from, to] = ends(where[m.src], where[m.dst]);
  const f = { live, ...m, from, to };
  const g = svg(layer, "g", {
    "data-flight": "", "data-from": m.src, "data-to": m.dst, "data-type": m.type,
    class: `msg t-${String(m.type).toLowerCase().replace(/[^a-z0-9_-]/g, "")}${m.lost ? " lost" : ""}`,
  });
  if (m.lost) g.dataset.lost = m.lost;
  g.style.setProperty("--msg", typeColour(m.type));
  f.titleEl = svg(g, "title");
  f.titleEl.textContent = flightTitle(f);
  f.el = g;
  if (reducedMotion.matches) {
    // A still arrow from the sender to where the message got (no movement).
    const p = pointAt(f, f.end);
    svg(g, "line", { x1: f.from[0], y1: f.from[1], x2: p[0], y2: p[1], class: "trail" });
    svg(g, "circle", { r: 1.1, cx: p[0], cy: p[1] });
    if (m.lost) svg(g, "path", { class: "dead", d: cross(p) });
    if (m.label || f.count > 1) {
      const label = svg(g, "text", { class: "count", x: p[0], y: p[1] - 1.8 });
      label.textContent = `${m.type}${f.count > 1 ? ` ×${f.count}` : ""}`;
    }
    f.still = true;
  } else {
    f.dot = svg(g, "circle", { r: f.count > 1 ? 1.4 : 1.1 });
    if (f.count > 1 || m.label) {
      // A quiet moment: name each message; a busy one: only the counts.
      const label = svg(g, "text", { class: "count", dy: "-1.8" });
      label.textContent = m.label ? `${m.type}${f.count > 1 ? ` ×${f.count}` : ""}` : `×${f.count}`;
    }
  }
  g.setAttribute("visibility", "hidden");
  flights.add(f);
  let extra = [...flights].filter((x) => x.live === live).length - MAX_FLIGHTS;
  for (const x of flights) {
    if (extra <= 0) break;
    if (x.live === live && x !== f) {
      finish(x);
      extra -= 1;
    }
  }
  return f;
}

const pointAt = (f, p) => [f.from[0] + (f.to[0] - f.from[0]) * p, f.from[1] + (f.to[1] - f.from[1]) * p];
const cross = ([x, y]) => `M${x - 1.3},${y - 1.3}L${x + 1.3},${y + 1.3}M${x + 1.3},${y - 1.3}L${x - 1.3},${y + 1.3}`;

function finish(f) {
  f.el.remove();
  flights.delete(f);
}

function die(f) {
  // The message stops where it was lost: a cross, then it fades.
  f.dead = true;
  f.el.classList.add("dying");
  if (f.dot) svg(f.el, "path", { class: "dead", d: cross([0, 0]) });
}

function tick() {
  const real = performance.now();
  if (real - movedAt < MOVE_MS - 4) {
    requestAnimationFrame(tick);
    return;
  }
  movedAt = real;
  let moving = false;
  for (const f of flights) {
    const paused = !f.own && clockOf(f.live).frozen;
    const now = f.own ? real : clockNow(f.live);
    const p = (now - f.start) / f.travel;
    if (p < 0) {
      if (!paused) moving = true;
      continue;
    }
    f.el.removeAttribute("visibility");
    if (f.still || f.dead) {
      // Still arrows and dead messages stay a moment (frozen: until play).
      if (now - f.start - (f.still ? 0 : f.travel * f.end) > STILL_MS) finish(f);
      else if (!paused) moving = true;
      continue;
    }
    if (p >= f.end) {
      if (f.lost) {
        f.el.setAttribute("transform", `translate(${pointAt(f, f.end).map((v) => v.toFixed(2)).join(" ")})`);
        die(f);
        if (!paused) moving = true;
      } else finish(f);
      continue;
    }
    const [x, y] = pointAt(f, p);
    f.el.setAttribute("transform", `translate(${x.toFixed(2)} ${y.toFixed(2)})`);
    if (!paused) moving = true;
  }
  ticking = moving;
  if (moving) requestAnimationFrame(tick);
}

function kick() {
  if (!ticking && flights.size) {
    ticking = true;
    requestAnimationFrame(tick);
  }
}

// Which colour is which message type: the types seen lately, newest first.
const LEGEND_MAX = 6;
function legend(live, layer, dots) {
  if (!dots.length) return;
  const seen = (live._flightTypes ||= []);
  for (const [, , type] of dots) {
    const i = seen.indexOf(type);
    if (i === 0) continue;
    if (i > 0) seen.splice(i, 1);
    seen.unshift(type);
  }
  seen.length = Math.min(seen.length, LEGEND_MAX);
  const key = seen.join(" ");
  let box = live.querySelector(".flight-legend");
  if (box && box.dataset.key === key) return;
  if (!box) {
    box = document.createElement("div");
    box.className = "flight-legend";
    box.setAttribute("aria-hidden", "true"); // the event log says the same in words
    layer.after(box);
  }
  box.dataset.key = key;
  box.replaceChildren(...seen.map((type) => {
    const item = document.createElement("span");
    const dot = item.appendChild(document.createElement("i"));
    dot.style.background = typeColour(type);
    item.append(type);
    return item;
  }));
}

function animate(live, data) {
  setFrozen(live, !!data.frozen);
  const layer = flightLayer(live);
  if (!layer) return;
  const where = {};
  live.querySelectorAll(".cluster g[data-node]").forEach((g) => {
    where[g.dataset.node] = [+g.dataset.x, +g.dataset.y];
  });
  const speed = +data.speed > 0 ? +data.speed : 1;
  // While frozen, what arrives (a step) still moves, on the real clock.
  const own = !!data.frozen;
  const base = own ? performance.now() : clockNow(live);
  const byId = new Map([...flights].filter((f) => f.live === live && f.id != null).map((f) => [f.id, f]));
  const label = (data.dots || []).length <= 5;
  for (const [src, dst, type, start, ms, lost, count, id] of data.dots || []) {
    if (!where[src] || !where[dst]) continue;
    const earlier = id != null && byId.get(id);
    if (lost && earlier && !earlier.lost && !earlier.dead && !earlier.still) {
      // Lost on arrival (its receiver went down): the dot already on its way dies near the end.
      earlier.lost = lost;
      earlier.end = 0.85;
      earlier.el.classList.add("lost");
      earlier.el.dataset.lost = lost;
      earlier.titleEl.textContent = flightTitle(earlier);
      continue;
    }
    const travel = Math.min(Math.max(ms / speed, TRAVEL_MS), MAX_TRAVEL_MS);
    const end = !lost ? 1 : lost === "node down" ? 0.85 : 0.5;
    newFlight(live, layer, where, {
      src, dst, type, lost, count, id, own, travel, end, label,
      start: base + Math.min(Math.max(start / speed, 0), 1000),
    });
  }
  legend(live, layer, data.dots || []);
  if (data.frozen) {
    // Messages in flight at the moment of freezing (or when this page joined a
    // frozen run) stand still where they are.
    const shown = new Set([...flights].filter((f) => f.live === live).map((f) => f.id));
    for (const [src, dst, type, progress, id] of data.held || []) {
      if (shown.has(id) || !where[src] || !where[dst]) continue;
      const f = newFlight(live, layer, where, {
        src, dst, type, lost: "", count: 1, id, own: false, travel: TRAVEL_MS, end: 1,
        start: clockNow(live) - progress * TRAVEL_MS,
      });
      const [x, y] = pointAt(f, progress);
      f.el.removeAttribute("visibility");
      if (f.dot) f.el.setAttribute("transform", `translate(${x.toFixed(2)} ${y.toFixed(2)})`);
    }
  }
  kick();
}

// Keep the socket's "connected" flag honest if the page is restored from cache.
window.addEventListener("pageshow", () => lives().forEach((l) => { if (l.dataset.connected !== "true") l.dataset.seq = "0"; }));

// "broken by event #N" on a check: show that event in the log.  A late joiner
// may not have it in the recent log: then the check's own detail says what
// happened, shown under the log.
document.addEventListener("click", (e) => {
  const link = e.target.closest("[data-seq-link]");
  if (!link) return;
  e.preventDefault();
  const live = liveOf(link);
  const seq = link.dataset.seqLink;
  const li = live.querySelector(`ol.log li[data-seq="${seq}"]`);
  const lookup = live.querySelector("[data-seq-lookup]");
  if (!li) {
    const check = link.closest("[data-check]");
    const detail = check?.querySelector(".detail")?.textContent.trim();
    if (lookup) {
      lookup.hidden = false;
      lookup.textContent = `Event #${seq} (before the recent log): check ${check?.dataset.check || ""} broken` +
        (detail ? `: ${detail}` : ".");
      lookup.scrollIntoView({ block: "nearest" });
    }
    return;
  }
  if (lookup) lookup.hidden = true;
  const follow = live.querySelector("[data-follow]");
  if (follow) follow.checked = false;
  li.scrollIntoView({ block: "center" });
  li.classList.add("flash-row");
  setTimeout(() => li.classList.remove("flash-row"), 2000);
});

// ---- sharing ------------------------------------------------------------------
document.addEventListener("click", async (e) => {
  const open = e.target.closest("[data-share]");
  if (open) {
    const box = document.getElementById(open.getAttribute("aria-controls"));
    const show = box.hidden;
    box.hidden = !show;
    open.setAttribute("aria-expanded", String(show));
    const img = box.querySelector("img[data-src]");
    if (show && img && !img.getAttribute("src")) img.src = img.dataset.src;
    if (show) box.querySelector("input")?.select();
    return;
  }
  const copy = e.target.closest("[data-copy]");
  if (copy) {
    const input = document.getElementById(copy.dataset.copy);
    const said = copy.parentElement.querySelector(".copied");
    let done = false;
    try {
      await navigator.clipboard.writeText(input.value);
      done = true;
    } catch (err) {
      input.select();
      done = document.execCommand && document.execCommand("copy");
    }
    said.textContent = done ? "Copied ✔" : "Select the link and copy it (Ctrl+C)";
    copy.dataset.copied = done ? "true" : "false";
    setTimeout(() => { said.textContent = ""; }, 3000);
  }
});
document.addEventListener("keydown", (e) => {
  if (e.key !== "Escape") return;
  document.querySelectorAll(".share-box:not([hidden])").forEach((box) => {
    box.hidden = true;
    const btn = document.querySelector(`[aria-controls="${box.id}"]`);
    btn?.setAttribute("aria-expanded", "false");
    btn?.focus();
  });
});

// ---- presenter mode -------------------------------------------------------------
document.addEventListener("click", (e) => {
  const btn = e.target.closest("[data-present]");
  if (!btn) return;
  const on = document.body.classList.toggle("present");
  btn.setAttribute("aria-pressed", String(on));
  const url = new URL(location.href);
  if (on) url.searchParams.set("present", "1");
  else url.searchParams.delete("present");
  history.replaceState(null, "", url);
  if (on) lives().forEach(presentFit);
  else document.querySelectorAll(".panels svg text[style]").forEach((el) => el.style.removeProperty("font-size"));
});

// ---- Set this up: has the step's state been reached? -------------------------------
// The run's simulated time now: the last frame's, plus the wall time since
// then at the run's speed (a quiet run sends no frames while its clock runs).
function simNow(live) {
  const meta = document.getElementById(`meta-${live.dataset.runId}`);
  if (!meta || meta.dataset.t === undefined) return 0;
  const t = +meta.dataset.t;
  if (live.dataset.frozen === "true" || !meta.dataset.wall) return t;
  const speed = parseFloat(live.dataset.speed) || 1;
  return t + Math.max(0, Date.now() - +meta.dataset.wall) * speed;
}

function watchStep(live) {
  const index = live.dataset.step;
  if (index === undefined) return;
  const state = live.querySelector("[data-step-state]");
  let tries = 0;
  const poll = async () => {
    tries += 1;
    try {
      const resp = await fetch(`${live.dataset.reachedUrl}?t=${Math.floor(simNow(live))}`,
        { credentials: "same-origin" });
      const body = await resp.json();
      if (body.reached) {
        live.dataset.reached = "true";
        if (state) state.textContent = `✔ reached at t = ${(body.t / 1000).toFixed(2)}s`;
        return;
      }
    } catch (err) { /* try again */ }
    if (tries < 120) setTimeout(poll, tries < 20 ? 500 : 1500);
    else if (state) state.textContent = "not reached yet (is the clock frozen?)";
  };
  setTimeout(poll, 500);
}

// ---- scenarios: captions as commands are applied, and what comes next -----------------
function watchScript(live) {
  const box = live.querySelector("[data-scripted]");
  if (!box) return;
  let script = [];
  try { script = JSON.parse(box.querySelector("script").textContent); } catch (err) { return; }
  const caption = box.querySelector("[data-caption]");
  const next = box.querySelector("[data-next]");
  let shown = -1;
  const describe = (c) => `${(c.t / 1000).toFixed(2)}s: ${c.do}${c.note ? ` — ${c.note}` : ""}`;
  const update = () => {
    const meta = document.getElementById(`meta-${live.dataset.runId}`);
    const t = meta && meta.dataset.t !== undefined ? +meta.dataset.t : 0;
    let last = -1;
    script.forEach((c, i) => { if (c.t <= t) last = i; });
    if (last !== shown && last >= 0) {
      shown = last;
      const c = script[last];
      caption.hidden = false;
      caption.textContent = c.note || c.do;
      caption.dataset.applied = String(last);
    }
    const upcoming = script.filter((c) => c.t > t);
    next.textContent = upcoming.length
      ? `Next in this scenario, ${upcoming.length} to come: ${describe(upcoming[0])}`
      : `Scenario played: all ${script.length} commands applied.`;
  };
  box.update = update;
  update();
}

// A side whose cluster produces no events (its frames, if any, only move the
// clock): say it is idle rather than let it look frozen.
const lastFrame = new WeakMap(); // when the run's last event arrived
const lastSeq = new WeakMap();
function watchIdle(live) {
  setInterval(() => {
    const note = live.querySelector(".idle-note");
    if (!note) return;
    const frozen = live.dataset.frozen === "true";
    const quiet = Date.now() - (lastFrame.get(live) || Date.now());
    const idle = live.dataset.connected === "true" && !frozen && quiet > 2500;
    note.hidden = !idle;
    live.dataset.idle = String(idle);
    if (idle) note.textContent = `idle: nothing has happened for ${Math.round(quiet / 1000)} s (the clock runs)`;
  }, 1000);
}

// In presenter mode no text may be smaller than 18 px on the projector: a
// lab's drawings are scaled to their box, so their small labels are enlarged
// here, after each frame, by what their scale lacks.
const PRESENT_MIN_PX = 18;
function presentFit(live) {
  if (!document.body.classList.contains("present")) return;
  live.querySelectorAll(".panels svg text").forEach((el) => {
    const m = el.getScreenCTM();
    if (!m) return;
    const scale = Math.hypot(m.a, m.b);
    const size = parseFloat(getComputedStyle(el).fontSize);
    if (scale && size * scale < PRESENT_MIN_PX) el.style.fontSize = `${(PRESENT_MIN_PX / scale).toFixed(2)}px`;
  });
}

document.body.addEventListener("htmx:wsAfterMessage", (e) => {
  const live = runOf(e);
  if (!live) return;
  if (lastSeq.get(live) !== live.dataset.seq) {
    lastSeq.set(live, live.dataset.seq);
    lastFrame.set(live, Date.now());
  }
  presentFit(live);
  live.querySelector("[data-scripted]")?.update?.();
});

lives().forEach((live) => {
  watchStep(live);
  watchScript(live);
  watchIdle(live);
});
