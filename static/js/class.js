// The class page: follows the class socket.  When the instructor changes what
// is on everyone's screen (hand out, show a student's run, bring back, end),
// the live area is fetched again; a student's vote stays marked; a student's
// page says every few seconds that it is still open (the dashboard's "connected").

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

if (room) {
  document.body.addEventListener("htmx:wsAfterMessage", (e) => {
    if (!e.target.closest || !e.target.closest("[data-class-socket]")) return;
    markVotes();
    followStage();
  });
  document.body.addEventListener("htmx:afterRequest", (e) => {
    const box = document.querySelector("#vote-msg [data-voted]");
    if (!box || !e.detail.successful) return;
    votes[box.dataset.pollId] = +box.dataset.voted;
    sessionStorage.setItem("pl-votes", JSON.stringify(votes));
    markVotes();
  });
  markVotes();
  if (room.dataset.classRole === "student") {
    const here = () => fetch(room.dataset.hereUrl, { method: "POST", headers: { "X-CSRFToken": csrf() } }).catch(() => {});
    here();
    setInterval(here, 10_000);
  }
}
