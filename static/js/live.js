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
  // The clock in force, for the page's controls and for tests.
  if (meta.dataset.frozen) live.dataset.frozen = meta.dataset.frozen;
  if (meta.dataset.speed) live.dataset.speed = meta.dataset.speed;
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
function send(live, el, action, args) {
  const rid = live.dataset.runId;
  // The source is the run's flash line, which queues every request
  // (hx-sync "queue all"): quick clicks are all sent, in order, none dropped.
  htmx.ajax("POST", live.dataset.commandUrl, {
    source: live.querySelector(".flash") || el,
    target: `#flash-${rid}`,
    swap: "innerHTML",
    values: { action, args: args.join(" ") },
  });
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
  for (const target of mirrors(live)) send(target, el, el.dataset.action, args);
});

// Side by side: a command given on either run goes to both.
function mirrors(live) {
  if (!live.closest("[data-compare]")) return [live];
  return [...document.querySelectorAll("[data-compare] [data-run-id][data-owner='true']")];
}

document.addEventListener("submit", (e) => {
  const form = e.target.closest("form.cmd");
  if (!form || !form.closest("[data-compare]")) return; // a single run: htmx posts the form
  e.preventDefault();
  e.stopPropagation();
  const live = liveOf(form);
  const data = new FormData(form);
  const args = data.getAll("args").map(String).filter(Boolean);
  for (const target of mirrors(live)) send(target, form, data.get("action"), args);
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

// "broken by event #N" on a check: show that event in the log.
document.addEventListener("click", (e) => {
  const link = e.target.closest("[data-seq-link]");
  if (!link) return;
  e.preventDefault();
  const live = liveOf(link);
  const li = live.querySelector(`ol.log li[data-seq="${link.dataset.seqLink}"]`);
  if (!li) {
    link.textContent = `event #${link.dataset.seqLink} (no longer in the recent log)`;
    return;
  }
  const follow = live.querySelector("[data-follow]");
  if (follow) follow.checked = false;
  li.scrollIntoView({ block: "center" });
  li.classList.add("flash-row");
  setTimeout(() => li.classList.remove("flash-row"), 2000);
});
