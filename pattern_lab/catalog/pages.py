"""The catalogue: every lab's page, grouped by the problem it solves."""

from __future__ import annotations

from dataclasses import dataclass

GROUPS = [
    ("Coordinating work across services", "Several services, one business operation: all of it happens or none of it does, and reads keep up with writes.",
     ["two-phase-commit", "saga", "cqrs"]),
    ("Scaling out", "More machines for more load: spreading requests, data and work, and skipping work that cannot pay off.",
     ["load-balancing", "sharding", "scatter-gather", "bloom-filter"]),
    ("Keeping replicas right", "Copies of data that crash, fall behind or disagree, and how they get back in line.",
     ["write-ahead-log", "split-brain", "hinted-handoff", "read-repair"]),
    ("Finding and agreeing", "Who leads, where the services are, and how a helper process rides along.",
     ["leader-election", "service-registry", "sidecar"]),
    ("Containing failure", "Keeping one slow or broken dependency from taking the whole system down.",
     ["circuit-breaker", "bulkhead", "retry"]),
]

SUMMARIES = {
    "two-phase-commit": "A coordinator asks every participant to prepare, then tells all of them to commit or abort.",
    "saga": "A long transaction split into local steps, each with a compensating step that undoes it.",
    "cqrs": "Writes go to one model, reads to projections of its events that may lag behind.",
    "load-balancing": "A balancer spreads requests over replicas and stops sending to the ones that fail.",
    "sharding": "Each key lives on one shard; how keys map to shards decides what moves when shards change.",
    "scatter-gather": "Split a job, send the parts to many workers at once, and gather the results.",
    "bloom-filter": "A few bits per item answer 'definitely not here' or 'maybe', and save lookups.",
    "write-ahead-log": "Write the change to a log on disk first; after a crash, replay the log.",
    "split-brain": "A partition leaves two leaders; generations and quorums keep only one of them in charge.",
    "hinted-handoff": "When a replica is down another node keeps its writes as hints and hands them over later.",
    "read-repair": "A read that sees replicas disagree writes the newest version back to the stale ones.",
    "leader-election": "Nodes agree on one leader, and on a new one when it fails: bully and ring algorithms.",
    "service-registry": "Instances register with leases; clients look them up instead of hard-coding addresses.",
    "sidecar": "A helper process beside the app ships its logs, proxies or caches, and fails on its own.",
    "circuit-breaker": "Stop calling a failing dependency for a while, then test it carefully before trusting it again.",
    "bulkhead": "Separate pools for separate dependencies, so one slow dependency cannot use up every thread.",
    "retry": "Try again after transient failures, with backoff and jitter, without duplicating side effects.",
}


@dataclass(frozen=True)
class Page:
    slug: str
    title: str
    group: str
    summary: str


def pages() -> dict[str, Page]:
    from simulations import labs

    found = labs()
    out = {}
    for group, _, slugs in GROUPS:
        for slug in slugs:
            if slug in found:
                out[slug] = Page(slug, found[slug].title, group, SUMMARIES.get(slug, ""))
    for slug, lab in found.items():  # a lab not yet placed in a group still gets a page
        out.setdefault(slug, Page(slug, lab.title, "More labs", SUMMARIES.get(slug, "")))
    return out


def grouped() -> list[dict]:
    all_pages = pages()
    out = []
    for group, blurb, slugs in GROUPS:
        items = [all_pages[s] for s in slugs if s in all_pages]
        if items:
            out.append({"name": group, "blurb": blurb, "pages": items})
    placed = {s for _, _, slugs in GROUPS for s in slugs}
    extra = [p for s, p in all_pages.items() if s not in placed]
    if extra:
        out.append({"name": "More labs", "blurb": "", "pages": extra})
    return out


# A path through the labs for a first course: from one failure and one
# decision to replicated data and transactions across services.
PATH = ["leader-election", "circuit-breaker", "retry", "bulkhead", "load-balancing", "service-registry",
        "sidecar", "sharding", "scatter-gather", "bloom-filter", "write-ahead-log", "split-brain",
        "hinted-handoff", "read-repair", "two-phase-commit", "saga", "cqrs"]
WHY = {
    "leader-election": "Start here: five nodes, one leader, one crash. Learn to read the page (the cluster, the checks, the log).",
    "circuit-breaker": "One failing service slows its callers; the breaker fails fast instead.",
    "retry": "Retrying fixes transient errors, and can flood a service that is trying to recover.",
    "bulkhead": "Separate pools so one slow dependency cannot take every thread.",
    "load-balancing": "Spread requests over replicas and stop sending to the dead ones.",
    "service-registry": "How callers find the replicas at all, and what leases have to do with it.",
    "sidecar": "A helper process beside the app, and what happens when it fails on its own.",
    "sharding": "Split the data; see how much of it moves when a shard is added.",
    "scatter-gather": "Split a job over workers; the slowest one sets the pace.",
    "bloom-filter": "Skip lookups that cannot succeed, at the price of a few false positives.",
    "write-ahead-log": "Durability on one node: log first, replay after a crash.",
    "split-brain": "Two leaders after a partition, and how generations and quorums prevent it.",
    "hinted-handoff": "Keep writes for a replica that is down and hand them over later.",
    "read-repair": "Replicas disagree; reads notice and fix them.",
    "two-phase-commit": "All or nothing across services, and the price: blocking while the coordinator is down.",
    "saga": "All or nothing without locks: undo completed steps instead.",
    "cqrs": "Separate write and read models, and live with the lag between them.",
}
