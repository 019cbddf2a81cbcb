// Live runs on a lab page: keeps data-connected / data-seq up to date, refuses
// frames that would skip or repeat sequence numbers (asking for the full state
// instead), sends the page's commands, and animates messages in flight.

const lives = () => document.querySelectorAll("[data-run-id]");
const liveOf = (el) => el.closest("[data-run-id]") || document.querySelector("[data-run-id]");
const HEAD = /data-seq="(\d+)" data-prev="(\d+)" data-kind="(\w+)"/;
const LOG_MAX = 80;

document.body.addEventListener("htmx:wsOpen", (e) => {
  const live = liveOf(e.target);
  live.dataset.connected = "true";
  live.querySelector(".conn-text").textContent = "live";
  // Say so if the cluster takes long to start (every worker busy).
  setTimeout(() => {
    const waiting = live.querySelector(".placeholder");
    if (waiting) waiting.textContent = "Waiting for a free worker to run this cluster; it starts as soon as one is free.";
  }, 5000);
});

document.body.addEventListener("htmx:wsClose", (e) => {
  const live = liveOf(e.target);
  live.dataset.connected = "false";
  live.querySelector(".conn-text").textContent = "reconnecting…";
});

// Decide, before htmx swaps anything, whether this frame follows the last one.
document.body.addEventListener("htmx:wsBeforeMessage", (e) => {
  const live = liveOf(e.target);
  const m = HEAD.exec(e.detail.message.slice(0, 400));
  if (!m) return; // not a frame (e.g. an error message for this socket)
  const seq = +m[1], prev = +m[2], kind = m[3], cur = +live.dataset.seq;
  if (kind === "full") {
    if (seq < cur) e.preventDefault(); // older than what is on screen
    return;
  }
  if (prev !== cur) {
    e.preventDefault();
    if (seq > cur) e.detail.socketWrapper.sendImmediately(JSON.stringify({ type: "sync" }));
  }
});

document.body.addEventListener("htmx:wsAfterMessage", (e) => {
  const live = liveOf(e.target);
  const rid = live.dataset.runId;
  const meta = document.getElementById(`meta-${rid}`);
  if (!meta || !meta.dataset.seq) return;
  live.dataset.seq = meta.dataset.seq;
  const log = document.getElementById(`log-${rid}`);
  collapseRepeats(log);
  while (log.children.length > LOG_MAX) log.firstElementChild.remove();
  const follow = live.querySelector("[data-follow]");
  if (!follow || follow.checked) log.scrollTop = log.scrollHeight;
  const flight = document.getElementById(`flight-${rid}`);
  try {
    animate(live, JSON.parse(flight.textContent || "{}"));
  } catch (err) {
    /* a malformed animation block only costs the animation */
  }
});

// "HEARTBEAT n4 -> n5 lost" fifty times is one line with a count.
function collapseRepeats(log) {
  let prev = null;
  for (const li of [...log.children]) {
    const text = li.querySelector("span")?.textContent;
    if (prev && text && text === prev.querySelector("span")?.textContent) {
      const n = (+prev.dataset.repeat || 1) + 1;
      li.dataset.repeat = n;
      let badge = li.querySelector(".repeat");
      if (!badge) badge = li.appendChild(document.createElement("b"));
      badge.className = "repeat";
      badge.textContent = ` ×${n}`;
      prev.remove();
    }
    prev = li;
  }
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
      text = '<span class="bad" role="alert">The server did not answer; check your connection.</span>';
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
  setTimeout(() => box.remove(), ok ? 2500 : 5000);
}

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
  const row = [...live.querySelectorAll(".nodes tbody th")].find((th) => th.textContent === g.dataset.node);
  if (row) {
    row.parentElement.classList.add("flash-row");
    row.parentElement.querySelector("button")?.focus();
    setTimeout(() => row.parentElement.classList.remove("flash-row"), 1200);
  }
});
document.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && e.target.matches && e.target.matches("g[data-node]")) e.target.dispatchEvent(new MouseEvent("click", { bubbles: true }));
});

// ---- messages in flight ------------------------------------------------------
// Simulated messages take a few milliseconds; drawn at that speed nobody would
// see them, so each one is shown travelling for a fixed, short wall time.
const TRAVEL_MS = 450;

function animate(live, flight) {
  const layer = live.querySelector(".flight-layer");
  if (!layer || !flight.dots || flight.frozen) return;
  const where = {};
  live.querySelectorAll(".cluster g[data-node]").forEach((g) => {
    where[g.dataset.node] = [+g.dataset.x, +g.dataset.y];
  });
  const start = performance.now();
  const batch = flight.dots.slice(-24).map(([src, dst, type, dropped], i) => {
    if (!where[src] || !where[dst]) return null;
    const dot = document.createElementNS("http://www.w3.org/2000/svg", "circle");
    dot.setAttribute("r", "1.1");
    dot.setAttribute("class", `msg ${dropped ? "lost" : ""} t-${String(type).toLowerCase()}`);
    dot.appendChild(document.createElementNS("http://www.w3.org/2000/svg", "title")).textContent = type;
    layer.appendChild(dot);
    return { dot, from: where[src], to: where[dst], dropped, delay: i * 12 };
  }).filter(Boolean);
  if (!batch.length) return;
  function step(now) {
    let alive = false;
    for (const m of batch) {
      let p = (now - start - m.delay) / TRAVEL_MS;
      if (p < 0) { alive = true; continue; }
      const end = m.dropped ? 0.5 : 1;
      if (p > end) { m.dot.remove(); continue; }
      alive = true;
      m.dot.setAttribute("cx", m.from[0] + (m.to[0] - m.from[0]) * p);
      m.dot.setAttribute("cy", m.from[1] + (m.to[1] - m.from[1]) * p);
    }
    if (alive) requestAnimationFrame(step);
  }
  requestAnimationFrame(step);
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
function clockNow(live) {
  const meta = document.getElementById(`meta-${live.dataset.runId}`);
  if (!meta || meta.dataset.t === undefined) return 0;
  const t = +meta.dataset.t;
  if (/frozen/.test(meta.textContent) || !meta.dataset.wall) return t;
  const speed = parseFloat((meta.textContent.match(/([\d.]+)×/) || [0, 1])[1]) || 1;
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
      const resp = await fetch(`/runs/${live.dataset.runId}/steps/${index}/?t=${Math.floor(clockNow(live))}`,
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

// A side whose cluster produces no events sends no frames: say it is idle
// rather than let it look frozen.
const lastFrame = new WeakMap();
function watchIdle(live) {
  setInterval(() => {
    const note = live.querySelector(".idle-note");
    if (!note) return;
    const meta = document.getElementById(`meta-${live.dataset.runId}`);
    const frozen = meta && /frozen/.test(meta.textContent);
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
  const live = liveOf(e.target);
  lastFrame.set(live, Date.now());
  presentFit(live);
  live.querySelector("[data-scripted]")?.update?.();
});

lives().forEach((live) => {
  watchStep(live);
  watchScript(live);
  watchIdle(live);
});
