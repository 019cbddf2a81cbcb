"""Helpers for tests that talk to the live stack."""

from __future__ import annotations

import redis

# Records, inside the page, every value data-seq takes and every event-log line
# added, so a test can check the order of what a viewer actually saw.
RECORDER = """
() => {
  const live = document.querySelector('[data-run-id]');
  window.__seqs = [];
  window.__logged = [];
  new MutationObserver(() => window.__seqs.push(+live.dataset.seq))
    .observe(live, {attributes: true, attributeFilter: ['data-seq']});
  const watchLog = () => {
    const log = live.querySelector('ol.log');
    new MutationObserver((ms) => ms.forEach((m) => m.addedNodes.forEach((n) => {
      if (n.dataset && n.dataset.seq) window.__logged.push(+n.dataset.seq);
    }))).observe(log, {childList: true});
  };
  watchLog();
  // A full frame replaces the <ol> itself: watch the new one too.
  new MutationObserver(() => { if (!live.querySelector('ol.log').__watched) {
      live.querySelector('ol.log').__watched = true; watchLog(); } })
    .observe(live.querySelector('.col-side'), {childList: true});
}
"""


def stack_redis(stack) -> redis.Redis:
    return redis.Redis.from_url(stack.redis_url)


def csrf(page) -> str:
    return next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")


def post(page, path: str, **form):
    return page.request.post(path, form=form, headers={"X-CSRFToken": csrf(page), "Referer": page.url})
