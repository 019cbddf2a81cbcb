"""The site's paths are named in one place (each app's urls.py): templates
use {% url %} (or {% ws_url %}), Python uses reverse(), and the public paths
that links, bookmarks and the docs rely on stay where they are."""

import re
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[2]

# Public paths (DESIGN.md, shared links, printed QR codes): name -> (args, path).
PUBLIC = [
    ("catalog:overview", [], "/"),
    ("catalog:lab", ["retry"], "/patterns/retry/"),
    ("catalog:scenario", ["retry"], "/patterns/retry/scenario/"),
    ("lessons:learn", ["retry"], "/patterns/retry/learn/"),
    ("lessons:lesson", ["retry", "storm"], "/patterns/retry/learn/storm/"),
    ("lessons:act", [7, "next"], "/lessons/7/next/"),
    ("runs:command", ["abc"], "/runs/abc/commands/"),
    ("runs:clock", ["abc"], "/runs/abc/clock/"),
    ("runs:restart", ["abc"], "/runs/abc/restart/"),
    ("runs:fork", ["abc"], "/runs/abc/fork/"),
    ("runs:export", ["abc"], "/runs/abc/scenario.json"),
    ("runs:qr", ["abc"], "/runs/abc/qr.svg"),
    ("runs:set-up", ["abc", 2], "/runs/abc/steps/2/set-up/"),
    ("runs:step", ["abc", 2], "/runs/abc/steps/2/"),
    ("timetravel:seek", ["abc"], "/runs/abc/seek/"),
    ("timetravel:history", ["abc"], "/runs/abc/history.json"),
    ("timetravel:at", ["abc", 1500], "/runs/abc/at/1500/"),
    ("timetravel:fork-at", ["abc"], "/runs/abc/fork-at/"),
    ("teach:home", [], "/teach/"),
    ("teach:play", ["s1"], "/s/s1/"),
    ("teach:join", [], "/join/"),
    ("teach:class", ["ABC123"], "/class/ABC123/"),
    ("login", [], "/accounts/login/"),
    ("logout", [], "/accounts/logout/"),
]


@pytest.mark.parametrize("name, args, path", PUBLIC)
def test_public_paths_stay_where_they_are(name, args, path):
    assert reverse(name, args=args) == path


def test_websocket_paths_are_named_too():
    assert reverse("run", urlconf="pattern_lab.routing", args=["abc"]) == "/ws/runs/abc/"
    assert reverse("class", urlconf="pattern_lab.routing", args=["ABC123"]) == "/ws/class/ABC123/"


# An attribute whose value starts with a literal path: href="/...", action="/...",
# hx-post="/...", ws-connect="/...", data-src="/...", value="...://host/patterns/..."
LITERAL_ATTR = re.compile(r'[\w-]+="/[^"]*"')
TAG = re.compile(r"{%.*?%}|{#.*?#}")


def templates():
    return sorted((ROOT / "templates").rglob("*.html"))


def test_templates_name_their_paths():
    found = []
    for f in templates():
        for n, line in enumerate(f.read_text().splitlines(), 1):
            for m in LITERAL_ATTR.finditer(line):
                found.append(f"{f.relative_to(ROOT)}:{n}: {m.group(0)[:80]}")
            if re.search(r"(?<![\w.-])/(patterns|runs)/", TAG.sub("", line)):
                found.append(f"{f.relative_to(ROOT)}:{n}: a literal /patterns/ or /runs/ path")
    assert not found, "use {% url %} for these paths:\n" + "\n".join(found)


def test_scripts_take_their_paths_from_the_page():
    found = []
    for f in sorted((ROOT / "static" / "js").glob("*.js")):
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if re.search(r"""["'`]/(patterns|runs|lessons|teach|class|join|s|accounts)/""", line):
                found.append(f"{f.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not found, "read these paths from data- attributes rendered with {% url %}:\n" + "\n".join(found)


def test_python_builds_paths_with_reverse():
    found = []
    for f in sorted((ROOT / "pattern_lab").rglob("*.py")):
        rel = f.relative_to(ROOT).as_posix()
        # urls.py / routing.py define the paths; the benchmarks are HTTP clients
        # of a running server (like the tests), speaking its public paths.
        if f.name in ("urls.py", "routing.py") or rel.startswith("pattern_lab/bench/"):
            continue
        for n, line in enumerate(f.read_text().splitlines(), 1):
            if re.search(r"""(?<!"")["']/(patterns|runs|lessons|teach|class|join|s|accounts)/""", line):
                found.append(f"{rel}:{n}: {line.strip()[:100]}")
    assert not found, "use reverse() for these paths:\n" + "\n".join(found)
