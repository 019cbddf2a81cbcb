// The class page: follows the class socket.  When the instructor changes what
// is on everyone's screen (hand out, show a student's run, bring back, end),
// the live area is fetched again; a student's vote stays marked; a student's
// page says every few seconds that it is still open (the dashboard's "connected").
//
// Time travel: the instructor's timeline on the shown run (a moment, a step,
// Back to live) is posted as a class change; the class state then carries
// data-view (live | past) and data-view-t, and a following student's timeline
// is moved to the same moment (timeline.js loads it as its own seek would).

const room = document.querySelector("[data-class-code]");
const votes = JSON.parse(sessionStorage.getItem("pl-votes") || "{}");

function csrf() {
  try {
    return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  } catch {
    return "";
  }
}

function markVotes() {
  document.querySelectorAll("[data-poll]").forEach((poll) => {
    const mine = votes[poll.dataset.poll];
    if (mine === undefined) return;
    poll.querySelectorAll("button[data-choice]").forEach((b) => {
      if (b.dataset.choice === String(mine)) {
        b.dataset.chosen = "true";
        b.setAttribute("aria-pressed", "true");
      }
      if (poll.dataset.pollState === "open") b.disabled = true; // one vote each
    });
  });
}

function followStage() {
  const state = document.getElementById("class-state");
  const box = document.querySelector("#class-stage [data-stage-key]");
  if (!state || !box || state.dataset.stageKey === box.dataset.stageKey) return;
  htmx.ajax("GET", room.dataset.stageUrl, { target: "#class-stage", swap: "innerHTML" }).catch(() => {});
}

function applyView(following) {
  const state = document.getElementById("class-state");
  const live = document.querySelector("#class-stage [data-run-id]");
  if (!state || !live || live.dataset.runId !== state.dataset.viewRun) return; // an own fork, or a stage on its way
  if (following && !live.querySelector("[data-timeline-box][data-following]")) return;
  const t = state.dataset.view === "past" ? +state.dataset.viewT : null;
  if (!following && t === null) return;
  live.dispatchEvent(new CustomEvent("tt:follow", { bubbles: true, detail: { t } }));
}

// The instructor's moments, one request at a time, the latest wins.
let wanted = null;
let sent = "";
let posting = false;

async function sendView(view) {
  wanted = view;
  if (posting) return;
  posting = true;
  try {
    while (wanted) {
      const body = new URLSearchParams(wanted);
      wanted = null;
      if (body.toString() === sent) continue;
      const r = await fetch(room.dataset.viewUrl, { method: "POST", body, headers: { "X-CSRFToken": csrf() } });
      if (r.ok) sent = body.toString();
      else document.getElementById("class-msg").innerHTML = await r.text();
    }
  } catch {
    /* the next moment is sent anyway */
  } finally {
    posting = false;
  }
}

function onLoad(f) {
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", f);
  else f();
}

if (room) {
  document.body.addEventListener("htmx:wsAfterMessage", (e) => {
    if (!e.target.closest || !e.target.closest("[data-class-socket]")) return;
    markVotes();
    followStage();
    if (room.dataset.classRole === "student") applyView(true);
  });
  // A new stage (bring back, show a student's run): it may be the run the class looks back at.
  document.body.addEventListener("htmx:afterSettle", (e) => {
    if (e.target.id === "class-stage" && room.dataset.classRole === "student") applyView(true);
  });
  document.body.addEventListener("htmx:afterRequest", (e) => {
    const box = document.querySelector("#vote-msg [data-voted]");
    if (!box || !e.detail.successful) return;
    votes[box.dataset.pollId] = +box.dataset.voted;
    sessionStorage.setItem("pl-votes", JSON.stringify(votes));
    markVotes();
  });
  markVotes();
  if (room.dataset.classRole === "instructor") {
    const mine = (e) => {
      const live = e.target.closest && e.target.closest("#class-stage [data-run-id]");
      return live && live.dataset.runId;
    };
    document.addEventListener("tt:moment", (e) => {
      const run = mine(e);
      if (run) sendView({ run, t: String(e.detail.t) });
    });
    document.addEventListener("tt:live", (e) => {
      const run = mine(e);
      if (run) sendView({ run, live: "1" });
    });
    // A reload while the class looks at the past: the instructor's page shows that moment too.
    onLoad(() => {
      const state = document.getElementById("class-state");
      if (state && state.dataset.view === "past") sent = new URLSearchParams({ run: state.dataset.viewRun, t: state.dataset.viewT }).toString();
      applyView(false);
    });
  } else {
    onLoad(() => applyView(true));
  }
  if (room.dataset.classRole === "student") {
    const here = () => fetch(room.dataset.hereUrl, { method: "POST", headers: { "X-CSRFToken": csrf() } }).catch(() => {});
    here();
    setInterval(here, 10_000);
  }
}
