// Time travel on a lab page: the timeline under the cluster.
//
// Live view: the range follows the run (max = value = the latest frame's t).
// Past view (dragging, the keyboard, the step buttons, a check's "broken by"
// link, a click in the space-time diagram): the page asks the server for that
// moment (/runs/<id>/seek/?t=) and swaps in the same fragments a frame has;
// live frames are ignored meanwhile, and Back to live asks the socket for the
// full current state ({"type": "sync"}).
//
// The live area carries data-view = live | past and data-t (the moment shown).
//
// A student following a class (the box has data-following) does not drive
// this timeline: its controls are disabled and class.js moves it to the
// instructor's moment with a "tt:follow" event ({t} or {t: null} for live).

import { parseHead } from "./wire.js";

const liveOf = (el) => el.closest("[data-run-id]");
const sockets = new WeakMap(); // live area -> htmx socket wrapper
const states = new WeakMap();
const fmt = (ms) => `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
const led = (live) => !!state(live)?.box.hasAttribute("data-following");

function state(live) {
  let s = states.get(live);
  if (!s) {
    const box = live.querySelector("[data-timeline-box]");
    if (!box) return null;
    s = { box, range: box.querySelector("[data-timeline]"), end: 0, marks: [], busy: false, want: null,
          prev: null, next: null, seq: 0, token: 0, marksAt: 0 };
    states.set(live, s);
  }
  return s;
}

function init(live) {
  if (live.dataset.view) return;
  live.dataset.view = "live";
  live.dataset.t = "";
  const s = state(live);
  if (!s) return;
  s.range.addEventListener("input", () => seek(live, +s.range.value));
  s.range.addEventListener("keydown", (e) => onKey(live, e));
  s.range.addEventListener("pointerdown", () => loadMarks(live));
  s.box.querySelector("[data-step-back]").addEventListener("click", () => step(live, -1));
  s.box.querySelector("[data-step-forward]").addEventListener("click", () => step(live, +1));
  s.box.querySelector("[data-back-to-live]").addEventListener("click", () => backToLive(live));
  loadMarks(live);
}

document.querySelectorAll("[data-run-id]").forEach(init);
// A live area swapped in later (a class page's stage when the instructor changes what is shown).
document.body.addEventListener("htmx:load", (e) => {
  const el = e.target;
  if (!el.querySelectorAll) return;
  if (el.matches("[data-run-id]")) init(el);
  el.querySelectorAll("[data-run-id]").forEach(init);
});

// ---- live frames
// Capture phase on window: runs before live.js, so a frame that arrives while
// the page shows the past is neither swapped in nor treated as a gap.
window.addEventListener("htmx:wsBeforeMessage", (e) => {
  const live = liveOf(e.target);
  if (!live) return;
  sockets.set(live, e.detail.socketWrapper);
  const s = state(live);
  const head = parseHead(e.detail.message);
  if (s && head) s.end = Math.max(s.end, head.t);
  if (live.dataset.view === "past") {
    e.preventDefault();
    e.stopPropagation();
    if (s) s.range.max = String(Math.floor(s.end));
    if (s) drawMarks(live);
  }
}, true);

document.body.addEventListener("htmx:wsOpen", (e) => {
  const live = liveOf(e.target);
  if (live) sockets.set(live, e.detail.socketWrapper);
});

document.body.addEventListener("htmx:wsAfterMessage", (e) => {
  const live = liveOf(e.target);
  const s = live && state(live);
  if (!s || live.dataset.view !== "live") return;
  const meta = document.getElementById(`meta-${live.dataset.runId}`);
  if (meta && meta.dataset.t) s.end = Math.max(s.end, +meta.dataset.t);
  s.range.max = String(Math.floor(s.end));
  s.range.value = s.range.max;
  s.range.setAttribute("aria-valuetext", `live, ${fmt(s.end)}`);
  s.box.querySelector("[data-timeline-time]").textContent = `live · ${fmt(s.end)}`;
  // Check marks change rarely: refresh them now and then, and when a check flips.
  const now = performance.now();
  if (now - s.marksAt > 15000 || /data-ok="false"/.test(e.detail.message || "")) {
    if (now - s.marksAt > 2000) loadMarks(live);
  }
  drawMarks(live);
});

// ---- marks
async function loadMarks(live) {
  const s = state(live);
  s.marksAt = performance.now();
  try {
    const r = await fetch(s.box.dataset.historyUrl, { headers: { Accept: "application/json" } });
    if (!r.ok) return;
    const h = await r.json();
    s.end = Math.max(s.end, h.end);
    s.marks = h.marks.map(([t, seq, kind, ok, label]) => ({ t, seq, kind, ok, label }));
    s.commands = h.commands;
    if (live.dataset.view === "live") s.range.max = String(Math.floor(s.end));
    drawMarks(live);
  } catch (err) { /* marks are a help, not a must */ }
}

function drawMarks(live) {
  const s = state(live);
  const box = s.box.querySelector(".tl-marks");
  const end = Math.max(+s.range.max, 1);
  const html = [];
  for (const m of s.marks.slice(-300)) {
    const cls = m.kind === "check" ? (m.ok ? "ok" : "bad") : m.kind === "rejected" ? "cmd" : "fault";
    html.push(`<span class="mk ${cls}" style="left:${Math.min(100, (m.t / end) * 100).toFixed(2)}%" title="${fmt(m.t)} ${m.label.replace(/[<&"]/g, "")}"></span>`);
  }
  for (const [t] of (s.commands || []).slice(-300)) {
    html.push(`<span class="mk cmd" style="left:${Math.min(100, (t / end) * 100).toFixed(2)}%"></span>`);
  }
  box.innerHTML = html.join("");
}

// ---- seeking
// One request in flight per run; while dragging, the latest wanted moment wins.
export async function seek(live, t, after) {
  const s = state(live);
  if (!s) return;
  t = Math.max(0, Math.min(t, s.end)); // exact: events happen at fractions of a ms
  enterPast(live, t);
  s.want = { t, after };
  if (s.busy) return;
  s.busy = true;
  try {
    while (s.want) {
      const { t: wanted, after: then } = s.want;
      s.want = null;
      const r = await fetch(`${s.box.dataset.seekUrl}?t=${wanted}`, { headers: { Accept: "application/json" } });
      const body = await r.json();
      if (!r.ok) { say(live, body.error || "That moment cannot be shown.", false); continue; }
      if (live.dataset.view !== "past" || s.want) continue; // back to live, or moved on meanwhile
      show(live, body);
      if (then) then(body);
    }
  } catch (err) {
    say(live, "Could not load that moment; try again.", false);
  } finally {
    s.busy = false;
  }
}

function enterPast(live, t) {
  const s = state(live);
  if (live.dataset.view !== "past") {
    live.dataset.view = "past";
    s.box.querySelector(".past-banner").hidden = false;
    s.box.querySelector("[data-back-to-live]").hidden = led(live);
    s.box.querySelector(".tl-fork").hidden = false;
    s.box.querySelector("[data-permalink]").hidden = false;
    live.classList.add("in-past");
    s.range.max = String(Math.floor(s.end));
  }
  live.dataset.t = String(t);
  s.range.value = String(t);
  s.range.setAttribute("aria-valuetext", `${fmt(t)}, in the past`);
  s.box.querySelector("[data-timeline-time]").textContent = fmt(t);
  s.box.querySelector("[data-fork-t]").value = String(t);
  s.box.querySelector("[data-permalink]").href = s.box.dataset.permalinkUrl.replace("__t__", String(t));
}

function show(live, body) {
  const s = state(live);
  for (const html of Object.values(body.parts)) {
    const tpl = document.createElement("template");
    tpl.innerHTML = html.trim();
    const el = tpl.content.firstElementChild;
    if (!el || !el.id) continue;
    el.removeAttribute("hx-swap-oob");
    const old = document.getElementById(el.id);
    if (old) old.replaceWith(el);
  }
  s.prev = body.prev_t;
  s.next = body.next_t;
  s.seq = body.seq;
  s.end = Math.max(s.end, body.end);
  live.dataset.t = String(body.t);
  s.box.querySelector("[data-past-when]").textContent = `t = ${fmt(body.t)}, after event #${body.seq}`;
  s.box.querySelector("[data-step-back]").disabled = led(live) || body.prev_t === null;
  const log = document.getElementById(`log-${live.dataset.runId}`);
  if (log) log.scrollTop = log.scrollHeight;
  live.dispatchEvent(new CustomEvent("tt:moment", { bubbles: true, detail: body }));
}

async function step(live, dir) {
  const s = state(live);
  if (live.dataset.view !== "past") {
    if (dir > 0) return; // live already shows the latest event
    await new Promise((done) => seek(live, s.end, done));
  }
  if (dir < 0 && s.prev !== null) seek(live, s.prev);
  else if (dir > 0 && s.next !== null) seek(live, s.next);
  else if (dir > 0) say(live, "No later event yet: this is the latest.", true);
}

function onKey(live, e) {
  const s = state(live);
  const t = live.dataset.view === "past" ? +live.dataset.t : s.end;
  const nudge = Math.max(100, Math.round(s.end / 100));
  const to = { ArrowLeft: t - nudge, ArrowDown: t - nudge, ArrowRight: t + nudge, ArrowUp: t + nudge,
               PageDown: t - 10 * nudge, PageUp: t + 10 * nudge, Home: 0 }[e.key];
  if (e.key === "End") { e.preventDefault(); backToLive(live); return; }
  if (to === undefined) return;
  e.preventDefault();
  if (to >= s.end && live.dataset.view !== "past") return;
  seek(live, to);
}

export function backToLive(live) {
  const s = state(live);
  live.dataset.view = "live";
  live.dataset.t = "";
  live.classList.remove("in-past");
  s.want = null;
  s.box.querySelector(".past-banner").hidden = true;
  s.box.querySelector("[data-back-to-live]").hidden = true;
  s.box.querySelector(".tl-fork").hidden = true;
  s.box.querySelector("[data-permalink]").hidden = true;
  s.box.querySelector("[data-step-back]").disabled = led(live);
  s.range.value = s.range.max;
  s.box.querySelector("[data-timeline-time]").textContent = "live";
  // Ask for the full current state: whatever was on screen is the past.
  live.dataset.seq = "0";
  const socket = sockets.get(live);
  if (socket) socket.sendImmediately(JSON.stringify({ type: "sync" }));
  live.dispatchEvent(new CustomEvent("tt:live", { bubbles: true }));
}

function say(live, text, ok) {
  const flash = document.getElementById(`flash-${live.dataset.runId}`);
  if (!flash) return;
  const span = document.createElement("span");
  span.className = ok ? "ok" : "bad";
  span.setAttribute("role", ok ? "status" : "alert");
  span.textContent = text;
  flash.replaceChildren(span);
}

// ---- links into the timeline
// "broken by event #N" on a check: move the timeline to that event.
window.addEventListener("click", (e) => {
  const link = e.target.closest && e.target.closest("[data-seq-link]");
  const live = link && liveOf(link);
  if (!live || !state(live)) return;
  e.preventDefault();
  e.stopPropagation();
  if (led(live)) { say(live, FOLLOWING, false); return; }
  jumpToEvent(live, +link.dataset.seqLink);
}, true);

async function jumpToEvent(live, seq) {
  const s = state(live);
  let mark = s.marks.find((m) => m.seq === seq);
  if (!mark) { await loadMarks(live); mark = s.marks.find((m) => m.seq === seq); }
  if (!mark) {
    const r = await fetch(`${s.box.dataset.historyUrl}?seq=${seq}`);
    const found = r.ok ? (await r.json()).event : null;
    if (found) mark = { t: found[0], seq: found[1] };
  }
  if (!mark) { say(live, `Event #${seq} is not on the timeline.`, false); return; }
  seek(live, mark.t, () => highlightLog(live, seq));
}

export function highlightLog(live, seq) {
  const log = document.getElementById(`log-${live.dataset.runId}`);
  if (!log) return;
  log.querySelectorAll(".selected").forEach((li) => li.classList.remove("selected"));
  const li = log.querySelector(`li[data-seq="${seq}"]`) ||
    [...log.querySelectorAll("li[data-seq]")].find((x) => +x.dataset.seq >= seq);
  if (!li) return;
  li.classList.add("selected");
  const follow = live.querySelector("[data-follow]");
  if (follow) follow.checked = false;
  li.scrollIntoView({ block: "nearest" });
}

// The diagram asks to show a moment (an arrow or a mark was selected).
document.addEventListener("tt:seek", (e) => {
  const live = liveOf(e.target);
  if (live && led(live)) { say(live, FOLLOWING, false); return; }
  if (live) seek(live, e.detail.t, () => { if (e.detail.seq) highlightLog(live, e.detail.seq); });
});

// In the past view the node buttons and forms would act on the live run, now:
// say so instead of acting.
window.addEventListener("click", (e) => {
  const el = e.target.closest && e.target.closest("[data-action], form.cmd button, form.clock button");
  const live = el && liveOf(el);
  if (!live || live.dataset.view !== "past") return;
  e.preventDefault();
  e.stopPropagation();
  say(live, "You are looking at the past: go Back to live to act on the cluster (or Fork from here).", false);
}, true);

// ---- following a class
// The instructor's moment: the same past view, or live again.  The moment was
// checked against the run by the server, so the timeline's end moves up to it.
const FOLLOWING = "You are following the instructor: the timeline moves with theirs.";

document.addEventListener("tt:follow", (e) => {
  const live = liveOf(e.target);
  const s = live && state(live);
  if (!s) return;
  const t = e.detail.t;
  if (t === null) {
    if (live.dataset.view === "past") backToLive(live);
    return;
  }
  if (live.dataset.view === "past" && +live.dataset.t === t && !s.want) return;
  s.end = Math.max(s.end, t);
  seek(live, t);
});
