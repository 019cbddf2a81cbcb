"""A short glossary: the terms a lab page uses, defined in a sentence each.

The page lists the terms that occur in its explanation and its What to try
steps, and links each term's first occurrence in the text to its definition."""

from __future__ import annotations

import re
from functools import cache

from django.utils.html import escape
from django.utils.text import slugify

# term: (definition, other spellings that count as the same term)
TERMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "seed": ("The number that drives every random choice of a run (latencies, losses, traffic). The same seed "
             "and the same commands give the same run, event for event.", ("seeds",)),
    "node": ("One machine or process of the cluster; it can crash (losing its memory, keeping its disk), pause, or "
             "be cut off by the network.", ("nodes",)),
    "partition": ("A network fault that splits the nodes into groups that cannot reach each other, while every "
                  "node keeps running.", ("partitioned", "partitions")),
    "quorum": ("The number of nodes that must agree before an operation counts, usually a majority, so that two "
               "quorums always share at least one node.", ("quorums",)),
    "majority": ("More than half of the nodes. Two majorities of the same cluster always overlap.", ()),
    "leader": ("The one node that takes certain decisions for the group, such as accepting writes, until it fails "
               "or is replaced.", ("leaders",)),
    "heartbeat": ("A small periodic message that says 'I am alive'; silence for longer than a timeout makes the "
                  "others suspect the sender has failed.", ("heartbeats",)),
    "generation": ("A number that grows by one with each new leader (also called epoch or term). Messages from an "
                   "older generation are refused, so a deposed leader cannot act.", ("generations", "generation number")),
    "fencing token": ("A number handed out with each lease or leadership that only ever grows; a resource refuses "
                      "requests carrying a smaller token than one it has seen.", ("fencing tokens", "fencing")),
    "pre-vote": ("A trial round before a real election: a node asks whether it could win before it disturbs the "
                 "cluster by raising the generation.", ()),
    "register": ("In the consistency sense, a single stored value that clients read and write; in a registry, "
                 "to announce an instance's address.", ("registers", "registered")),
    "lease": ("A right that holds only for a limited time and must be renewed; if the holder goes quiet the lease "
              "expires on its own.", ("leases",)),
    "TTL": ("Time to live: how long an entry or lease stays valid without being renewed.", ()),
    "idempotent": ("An operation that has the same effect whether it is applied once or several times, so a "
                   "repeated message does no harm.", ("idempotency", "idempotence")),
    "compensation": ("A step that semantically undoes an earlier, already committed step of a saga (a refund for a "
                     "payment).", ("compensations", "compensating", "compensate")),
    "projection": ("A read model built by applying the write side's events in order.", ("projections", "projector")),
    "eventual consistency": ("Replicas may disagree for a while but converge once updates stop arriving.",
                             ("eventually consistent",)),
    "replica": ("One of several copies of the same data kept on different nodes.", ("replicas",)),
    "hint": ("A write kept by a stand-in node on behalf of a replica that is down, to be handed over when it "
             "returns.", ("hints", "hinted")),
    "sloppy quorum": ("A quorum that may count stand-in nodes when the real replicas are down, so writes stay "
                      "available at the cost of consistency.", ()),
    "anti-entropy": ("A background process that compares replicas and copies over whatever one of them is "
                     "missing.", ()),
    "read repair": ("Fixing stale replicas as a side effect of a read that noticed they disagree.", ()),
    "backoff": ("Waiting longer before each new retry, usually doubling the wait.", ()),
    "jitter": ("Randomness added to retry waits so that many clients do not retry at the same instant.", ()),
    "checkpoint": ("A saved copy of the state up to some position of a log, so that older log records are no "
                   "longer needed for recovery.", ("checkpoints",)),
    "fsync": ("The call that forces written data from the operating system's memory onto the disk; only then "
              "does it survive a power loss.", ()),
    "CRC": ("A checksum stored with each record; a record whose checksum does not match was damaged.", ()),
    "virtual node": ("One of many points a shard takes on a hash ring, so that keys spread evenly.",
                     ("virtual nodes", "vnodes")),
    "straggler": ("A worker that is much slower than the others and holds up the whole job.", ("stragglers",)),
    "fallback": ("The answer given instead of a real one when a call is not made or fails: a default, a cached "
                 "value, or a clear error.", ("fallbacks",)),
    "half-open": ("The breaker state in which a few trial calls go through to test whether the dependency has "
                  "recovered.", ()),
    "in doubt": ("A participant that voted yes and has not yet heard the decision: it may neither commit nor "
                 "abort on its own.", ()),
    "coordinator": ("The node that drives a protocol for the others, such as collecting votes and announcing the "
                    "decision.", ("coordinators",)),
    "timeout": ("How long a node waits for an answer before it treats the call as failed.", ("timeouts",)),
}


def _pattern(term: str, alts: tuple[str, ...]) -> re.Pattern:
    words = sorted((term, *alts), key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in words) + r")(?![\w-])",
                      re.IGNORECASE if term != "TTL" and term != "CRC" else 0)


PATTERNS = {term: _pattern(term, alts) for term, (_, alts) in TERMS.items()}
SKIP_TAGS = {"a", "code", "h1", "h2", "h3", "dfn", "button", "label", "summary", "option", "script", "style"}
TAG = re.compile(r"(<[^>]+>)")


def anchor(term: str) -> str:
    return "term-" + slugify(term)


def terms_in(text: str) -> list[str]:
    plain = TAG.sub(" ", text)
    return [t for t, p in PATTERNS.items() if p.search(plain)]


def link_terms(html: str, seen: set[str]) -> str:
    """Link the first occurrence of each glossary term in `html` (skipping
    terms already in `seen`, code, headings and links) to its definition."""
    out, stack = [], []
    for part in TAG.split(html):
        if part.startswith("<"):
            m = re.match(r"<(/?)([a-zA-Z0-9]+)", part)
            if m and m.group(2).lower() in SKIP_TAGS:
                if m.group(1):
                    if stack:
                        stack.pop()
                elif not part.endswith("/>"):
                    stack.append(m.group(2).lower())
            out.append(part)
            continue
        if not stack:
            for term, pattern in PATTERNS.items():
                if term in seen:
                    continue
                match = pattern.search(part)
                if match:
                    seen.add(term)
                    definition = escape(TERMS[term][0])
                    link = (f'<a class="term" href="#{anchor(term)}" title="{definition}">'
                            f'{match.group(0)}</a>')
                    part = part[:match.start()] + "\x00" + str(len(out)) + "\x00" + part[match.end():]
                    out.append(("link", link))
        out.append(part)
    # put the links in place of their markers (kept out of the text while later terms were searched)
    text, links = [], {}
    for i, piece in enumerate(out):
        if isinstance(piece, tuple):
            links[str(i)] = piece[1]
        else:
            text.append(piece)
    return re.sub(r"\x00(\d+)\x00", lambda m: links[m.group(1)], "".join(text))


@cache
def glossary_for(slug: str) -> list[dict]:
    """The terms this lab's page uses, in alphabetical order."""
    from django.template.loader import get_template

    from .tries import items

    text = " ".join(i.text for i in items(slug))
    try:
        text += get_template(f"labs/{slug}/explain.html").template.source
    except Exception:  # a lab without an explanation still gets the terms of its steps
        pass
    found = set(terms_in(text)) | {"seed"}
    return [{"term": t, "id": anchor(t), "definition": TERMS[t][0]} for t in sorted(found, key=str.lower)]
