// The lesson panel: completes the active step as soon as a frame says its
// condition holds (the server checks it again against the run before grading),
// shows the hint when the step takes longer than it should, and keeps the
// keyboard focus on the panel's new content after each swap.

const panel = () => document.querySelector("[data-lesson]");
let posting = false;

document.body.addEventListener("htmx:wsAfterMessage", () => {
  const p = panel();
  if (!p) return;
  const box = document.getElementById(`watch-${p.dataset.lessonRun}`);
  if (!box || !box.dataset.watch) return;
  let values;
  try {
    values = JSON.parse(box.dataset.watch);
  } catch {
    return;
  }
  if (String(values.step) !== p.dataset.step) return; // a frame from before the step changed
  const hint = p.querySelector("[data-hint]");
  if (hint && hint.hidden && values.t - +p.dataset.mark > +hint.dataset.within) hint.hidden = false;
  if (p.dataset.await !== "expect" || posting || !truthy(values.expect)) return;
  posting = true;
  htmx.ajax("POST", p.dataset.completeUrl, { source: p, target: p, swap: "outerHTML", values: { t: values.t, at: p.dataset.step } })
    .finally(() => { posting = false; });
});

// JMESPath's truth: false, null, "", [] and {} are false.
function truthy(v) {
  if (v === false || v === null || v === undefined || v === "") return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === "object") return Object.keys(v).length > 0;
  return true;
}

// After the panel is swapped, put the focus where the learner's eyes should go
// (the reveal, the summary, or the active step's first enabled button: once a
// prediction is made its choices are disabled by their fieldset, which
// `[disabled]` does not see, so ask for `:enabled`).  Each swap makes a new
// panel element, so each new panel is focused once.
document.body.addEventListener("htmx:afterSettle", () => {
  const p = panel();
  if (!p || p._focused) return;
  p._focused = true;
  if (!p.contains(document.activeElement) && document.activeElement !== document.body) return;
  const target = p.querySelector("[data-focus]") || p.querySelector("[aria-current='step'] button:enabled");
  if (target) target.focus({ preventScroll: false });
});
// The panel the page opened with keeps the focus where the browser put it.
if (panel()) panel()._focused = true;
