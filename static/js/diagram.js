// The space-time diagram: one lane per node, time flowing down, one arrow per
// message from its send to its delivery (or to a cross where it was lost).
//
// Data (see pattern_lab/timetravel/feed.py):
//   ["s", id, src, dst, type, sent, arrive, copy, seq]  a message sent
//   ["d", id, src, dst, type, t, reason, seq]           a message lost, and why
//   ["f", kind, node | sides | [src, dst], t, seq]      a fault
// Live: each frame carries its batch in a hidden <div id="msgs-<run>">; the diagram
// keeps the latest WINDOW_MS.  Past: the seek response carries the window
// before the moment shown (timeline.js fires "tt:moment").

const SVG = "http://www.w3.org/2000/svg";
const WINDOW_MS = 5000;
const MAX_ARROWS = 160; // beyond this, periodic traffic is thinned (and the panel says so)
const VECTOR_MAX_NODES = 4;
const areas = new WeakMap();

function area(live) {
  let a = areas.get(live);
  if (!a) {
    const box = live.querySelector("[data-diagram]");
    if (!box) return null;
    a = { box, svg: box.querySelector("[data-dg-svg]"), feed: [], lastSeq: 0, from: 0, to: 0,           pending: false, nodes: null };
    areas.set(live, a);
    box.querySelector("[data-clocks]").addEventListener("change", () => draw(live));
    a.seen = true;
    if (window.IntersectionObserver) {
      new IntersectionObserver((entries) => { a.seen = entries[entries.length - 1].isIntersecting; }).observe(box);
    }
  }
  return a;
}

// ---- live
// Each frame's block (a hidden element swapped by id) holds that batch's events.
document.body.addEventListener("htmx:wsAfterMessage", (e) => {
  const live = e.target.closest("[data-run-id]");
  const a = live && area(live);
  if (!a || live.dataset.view === "past") return;
  const block = document.getElementById(`msgs-${live.dataset.runId}`);
  let batch = [];
  try { batch = JSON.parse(block?.dataset.msgs || "[]"); } catch (err) { batch = []; }
  for (const ev of batch) {
    const seq = ev[ev.length - 1];
    if (seq > a.lastSeq) { a.feed.push(ev); a.lastSeq = seq; }
  }
  const meta = document.getElementById(`meta-${live.dataset.runId}`);
  if (meta && meta.dataset.t) a.to = Math.max(a.to, +meta.dataset.t);
  a.from = Math.max(0, a.to - WINDOW_MS);
  a.feed = a.feed.filter((ev) => endOf(ev) >= a.from);
  if (!a.pending) {
    a.pending = true;
    // Redrawing the whole diagram costs: four times a second while it is on
    // screen, once a second while it is scrolled out of view.
    setTimeout(() => { a.pending = false; if (live.dataset.view !== "past") draw(live); }, a.seen ? 250 : 1000);
  }
});

const endOf = (ev) => (ev[0] === "s" ? Math.max(ev[6], ev[5]) : ev[0] === "d" ? ev[5] : ev[3]);

// ---- past
document.addEventListener("tt:moment", (e) => {
  const live = e.target.closest("[data-run-id]");
  const a = live && area(live);
  if (!a) return;
  const d = e.detail.diagram;
  a.feed = d.events;
  a.from = d.from;
  a.to = d.to;
  a.nodes = d.nodes;
  draw(live);
});

document.addEventListener("tt:live", (e) => {
  const live = e.target.closest("[data-run-id]");
  const a = live && area(live);
  if (!a) return;
  a.feed = [];
  a.lastSeq = 0;
  a.nodes = null;
  draw(live);
});

// The permalink page: one moment, drawn once.
document.querySelectorAll("[data-diagram-initial]").forEach((el) => {
  const live = el.closest("[data-run-id]");
  const a = area(live);
  const d = JSON.parse(el.textContent);
  Object.assign(a, { feed: d.events, from: d.from, to: d.to, nodes: d.nodes });
  draw(live);
  const log = live.querySelector("ol.log");
  if (log) log.scrollTop = log.scrollHeight; // the latest lines: those just before the moment
});

// ---- building the picture
function lanesOf(live, a) {
  if (a.nodes) return a.nodes;
  const ids = [...live.querySelectorAll(".cluster g[data-node]")].map((g) => g.dataset.node);
  return ids;
}

function messages(feed, to) {
  const sends = new Map();
  const out = [];
  const marks = [];
  for (const ev of feed) {
    if (ev[0] === "s") {
      const [, id, src, dst, type, sent, arrive, copy, seq] = ev;
      const m = { id, src, dst, type, sent, arrive, seq, fate: copy ? "duplicate" : arrive > to ? "in-flight" : "delivered" };
      sends.set(`${id}/${dst}`, m);
      out.push(m);
    } else if (ev[0] === "d") {
      const [, id, src, dst, type, t, reason, seq] = ev;
      const m = sends.get(`${id}/${dst}`);
      if (m && m.fate !== "lost" && reason === "node down") {
        Object.assign(m, { fate: "lost", died: t, reason, dropSeq: seq });
      } else {
        out.push({ id, src, dst, type, sent: t, arrive: null, seq, dropSeq: seq, fate: "lost", died: t, reason });
      }
    } else {
      const [, kind, what, t, seq] = ev;
      marks.push({ kind, what, t, seq });
    }
  }
  return { msgs: out, marks };
}

// Keep the busiest picture readable: thin the most frequent message types
// (periodic traffic like heartbeats) to one in k; lost messages are always kept.
function thin(msgs) {
  if (msgs.length <= MAX_ARROWS) return { msgs, note: "" };
  const counts = {};
  for (const m of msgs) counts[m.type] = (counts[m.type] || 0) + 1;
  const busy = Object.entries(counts).sort((x, y) => y[1] - x[1]);
  const thinned = new Map();
  let total = msgs.length;
  for (const [type, n] of busy) {
    if (total <= MAX_ARROWS) break;
    const k = Math.ceil(n / Math.max(8, n - (total - MAX_ARROWS)));
    if (k <= 1) continue;
    thinned.set(type, k);
    total -= n - Math.ceil(n / k);
  }
  const seen = {};
  const kept = msgs.filter((m) => {
    const k = thinned.get(m.type);
    if (!k || m.fate === "lost") return true;
    seen[m.type] = (seen[m.type] || 0) + 1;
    return seen[m.type] % k === 1;
  });
  const note = [...thinned].map(([type, k]) => `1 in ${k} ${type}`).join(", ");
  return { msgs: kept, note: `Busy: showing ${note} (periodic traffic thinned; lost messages all shown).` };
}

// Lamport clocks (and vector clocks for small clusters) over the events shown,
// counted from the start of the window.
function clocks(lanes, msgs, marks, to) {
  const L = Object.fromEntries(lanes.map((n) => [n, 0]));
  const V = Object.fromEntries(lanes.map((n) => [n, lanes.map(() => 0)]));
  const idx = Object.fromEntries(lanes.map((n, i) => [n, i]));
  const steps = [];
  for (const m of msgs) {
    steps.push({ t: m.sent, o: 0, m, what: "send" });
    if ((m.fate === "delivered" || m.fate === "duplicate") && m.arrive <= to) steps.push({ t: m.arrive, o: 1, m, what: "recv" });
  }
  for (const k of marks) if (typeof k.what === "string") steps.push({ t: k.t, o: 2, k, what: "mark" });
  steps.sort((x, y) => x.t - y.t || x.o - y.o);
  for (const s of steps) {
    const node = s.what === "send" ? s.m.src : s.what === "recv" ? s.m.dst : s.k.what;
    if (!(node in L)) continue;
    if (s.what === "recv") {
      L[node] = Math.max(L[node], s.m.lc || 0) + 1;
      if (s.m.vc) V[node] = V[node].map((v, i) => Math.max(v, s.m.vc[i]));
    } else {
      L[node] += 1;
    }
    V[node][idx[node]] += 1;
    const label = lanes.length <= VECTOR_MAX_NODES ? `${L[node]} [${V[node].join(",")}]` : String(L[node]);
    if (s.what === "send") { s.m.lc = L[node]; s.m.vc = [...V[node]]; s.m.sendLabel = label; }
    else if (s.what === "recv") s.m.recvLabel = label;
    else s.k.label = label;
  }
}

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function draw(live) {
  const a = area(live);
  const lanes = lanesOf(live, a);
  const svg = a.svg;
  svg.replaceChildren();
  const width = Math.max(300, a.box.clientWidth || 600);
  const height = 360;
  const top = 22, bottom = height - 14, left = 46, right = width - 30;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  const span = Math.max(a.to - a.from, 1);
  const y = (t) => top + ((Math.min(Math.max(t, a.from), a.to) - a.from) / span) * (bottom - top);
  const x = {};
  lanes.forEach((n, i) => { x[n] = lanes.length === 1 ? (left + right) / 2 : left + (i * (right - left)) / (lanes.length - 1); });

  // Lanes, with the window's start and end times.
  el("text", { x: 2, y: top + 4, class: "dg-time" }, svg).textContent = `${(a.from / 1000).toFixed(2)}s`;
  el("text", { x: 2, y: bottom + 10, class: "dg-time" }, svg).textContent = `${(a.to / 1000).toFixed(2)}s ↓`;
  for (const n of lanes) {
    const g = el("g", { "data-lane": n, class: "dg-lane" }, svg);
    el("line", { x1: x[n], y1: top, x2: x[n], y2: bottom }, g);
    el("text", { x: x[n], y: 12, class: "dg-node" }, g).textContent = n;
  }

  const { msgs: all, marks } = messages(a.feed, a.to);
  const inWindow = all.filter((m) => x[m.src] !== undefined && x[m.dst] !== undefined &&
    (m.arrive ?? m.died ?? m.sent) >= a.from && m.sent <= a.to);
  const { msgs, note } = thin(inWindow);
  const showClocks = a.box.querySelector("[data-clocks]").checked;
  if (showClocks) clocks(lanes, msgs, marks, a.to);
  a.box.querySelector("[data-dg-note]").textContent = note ||
    `Time flows down: the ${((a.to - a.from) / 1000).toFixed(0)} s before ${(a.to / 1000).toFixed(2)} s, one arrow per message.` +
    (showClocks ? (lanes.length <= VECTOR_MAX_NODES ? " Lamport [vector] clocks" : " Lamport clocks") + " counted from the top of the window." : "");

  // Faults on the lanes: crashes, restarts, pauses; partitions across the diagram.
  for (const k of marks) {
    if (k.t < a.from) continue;
    const g = el("g", { class: `dg-mark mk-${k.kind}`, "data-mark": k.kind, "data-seq": k.seq, tabindex: 0 }, svg);
    const yy = y(k.t);
    if (typeof k.what === "string" && x[k.what] !== undefined) {
      el("rect", { x: x[k.what] - 7, y: yy - 4, width: 14, height: 8, rx: 2 }, g);
      el("text", { x: x[k.what] + 10, y: yy + 3, class: "dg-label" }, g).textContent = k.kind + (showClocks && k.label ? ` ${k.label}` : "");
    } else {
      el("line", { x1: left - 10, y1: yy, x2: right + 10, y2: yy }, g);
      const sides = Array.isArray(k.what) && Array.isArray(k.what[0]) ? k.what.map((s) => s.join(",")).join(" | ") : (k.what || []).join(" → ");
      el("text", { x: left, y: yy - 3, class: "dg-label" }, g).textContent = `${k.kind} ${sides}`.trim();
    }
    el("title", {}, g).textContent = `${k.kind} at ${(k.t / 1000).toFixed(3)}s (event #${k.seq})`;
  }

  // Arrows.  A broadcast (one node sending the same type to several at one
  // instant) is labelled once, so the picture stays readable.
  const labelled = new Set();
  const groups = {};
  for (const m of msgs) {
    const g = `${m.src}|${m.type}|${m.sent}`;
    (groups[g] = groups[g] || []).push(m);
  }
  for (const m of msgs) {
    const x1 = x[m.src], y1 = y(m.sent);
    let x2 = x[m.dst], y2;
    if (m.fate === "lost" && m.arrive === null) {
      // Lost on the way out (partition, cut, loss): dies a third of the way over.
      x2 = x1 + (x[m.dst] - x1) * 0.35; y2 = y1 + 10;
    } else if (m.fate === "lost") {
      y2 = y(m.died); // reached a node that was down
    } else if (m.fate === "in-flight") {
      const p = (a.to - m.sent) / Math.max(m.arrive - m.sent, 1);
      x2 = x1 + (x[m.dst] - x1) * Math.min(1, p); y2 = y(a.to);
    } else {
      y2 = y(m.arrive);
    }
    const g = el("g", { class: `dg-msg fate-${m.fate}`, "data-msg": "", "data-from": m.src, "data-to": m.dst,
      "data-sent": m.sent, "data-type": m.type, "data-fate": m.fate, "data-seq": m.dropSeq || m.seq, tabindex: 0 }, svg);
    if (m.reason) g.setAttribute("data-reason", m.reason);
    el("line", { x1, y1, x2, y2 }, g);
    el("line", { x1, y1, x2, y2, class: "hit" }, g); // a wider, invisible target for the pointer
    const group = groups[`${m.src}|${m.type}|${m.sent}`];
    const first = group[0] === m;
    if (m.fate === "lost") {
      el("path", { class: "cross", d: `M${x2 - 4},${y2 - 4} L${x2 + 4},${y2 + 4} M${x2 + 4},${y2 - 4} L${x2 - 4},${y2 + 4}` }, g);
      const why = `${m.src}|${m.sent}|${m.reason}`;
      if (!labelled.has(why)) { labelled.add(why); el("text", { x: x2 + 5, y: y2 + 10, class: "dg-why" }, g).textContent = m.reason; }
    }
    const mx = (x1 + x2) / 2, my = (y1 + y2) / 2;
    if (first && (msgs.length < 80 || m.fate === "lost")) {
      el("text", { x: mx + 3, y: my - 2, class: "dg-type" }, g).textContent = group.length > 1 ? `${m.type} ×${group.length}` : m.type;
    }
    if (showClocks && m.sendLabel && first) {
      const last = group[group.length - 1];
      const text = group.length > 1 && last.lc ? `${m.lc}–${last.lc}` : m.sendLabel;
      el("text", { x: x1 - 4, y: y1 - 2, class: "dg-clock", "text-anchor": "end" }, g).textContent = text;
    }
    if (showClocks && m.recvLabel) el("text", { x: x2 + (x2 > x1 ? -4 : 4), y: y2 + 9, class: "dg-clock", "text-anchor": x2 > x1 ? "end" : "start" }, g).textContent = m.recvLabel;
    if (a.selectedSeq && g.dataset.seq === a.selectedSeq) g.classList.add("selected");
    el("title", {}, g).textContent = `${m.type} ${m.src} → ${m.dst}, sent ${(m.sent / 1000).toFixed(3)}s: ${m.fate}${m.reason ? ` (${m.reason})` : ""}`;
  }
}

// ---- selection
// An arrow or a mark: move the scrubber to it and select its line in the log.
function select(target) {
  const live = target.closest("[data-run-id]");
  const a = area(live);
  a.svg.querySelectorAll(".selected").forEach((x) => x.classList.remove("selected"));
  target.classList.add("selected");
  a.selectedSeq = target.dataset.seq;
  const t = target.matches("[data-msg]") ? +target.dataset.sent : null;
  const seq = +target.dataset.seq;
  const when = t ?? +(target.querySelector("title")?.textContent.match(/at ([\d.]+)s/)?.[1] || 0) * 1000;
  if (live.querySelector("[data-timeline]")) {
    target.dispatchEvent(new CustomEvent("tt:seek", { bubbles: true, detail: { t: Math.ceil(when), seq } }));
  }
}

document.addEventListener("click", (e) => {
  const hit = e.target.closest && e.target.closest("[data-dg-svg] [data-msg], [data-dg-svg] [data-mark]");
  if (hit) select(hit);
});
document.addEventListener("keydown", (e) => {
  if ((e.key === "Enter" || e.key === " ") && e.target.matches && e.target.matches("[data-dg-svg] [data-msg], [data-dg-svg] [data-mark]")) {
    e.preventDefault();
    select(e.target);
  }
});

// A log line: highlight its arrow (the lost message or fault it reports, else
// the last message delivered to... anything at or before it).
document.addEventListener("click", (e) => {
  const li = e.target.closest && e.target.closest("ol.log li[data-seq]");
  if (!li) return;
  const live = li.closest("[data-run-id]");
  const a = live && area(live);
  if (!a) return;
  li.parentElement.querySelectorAll(".selected").forEach((x) => x.classList.remove("selected"));
  li.classList.add("selected");
  a.svg.querySelectorAll(".selected").forEach((x) => x.classList.remove("selected"));
  const seq = +li.dataset.seq;
  let hit = a.svg.querySelector(`[data-seq="${seq}"]`);
  if (!hit) {
    const before = [...a.svg.querySelectorAll("[data-msg]")].filter((g) => +g.dataset.seq < seq);
    hit = before[before.length - 1];
  }
  if (hit) hit.classList.add("selected");
  a.selectedSeq = hit ? hit.dataset.seq : null; // kept across redraws of the live diagram
});
