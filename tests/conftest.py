"""Shared fixtures.  Integration and browser tests run against a real stack:
a private redis-server, a Celery worker and daphne, started once per session
by the same code as `make run` (pattern_lab/stack.py)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlencode

import pytest

# Fixtures of the instructors' tests (an instructor account in the test stack).
pytest_plugins = ["tests.teaching"]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def start_stack(prefix: str = "pattern-lab-test-", idle_s: int = 10, **kw):
    """A real stack (private Redis, Celery workers, daphne) in its own folder
    and on its own port; stop it with stop_stack()."""
    from pattern_lab.stack import Stack, free_port

    var = Path(tempfile.mkdtemp(prefix=prefix))
    env = {"PATTERN_LAB_IDLE_S": str(idle_s), "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}"}
    os.environ.pop("REDIS_URL", None)
    kw = {"workers": 1, "concurrency": 64, **kw}
    s = Stack(var, port=free_port(), quiet=True, env=env, **kw)
    s.start()
    s.base_url = f"http://127.0.0.1:{s.port}"
    return s


def stop_stack(s) -> None:
    s.stop()
    shutil.rmtree(s.var_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def stack():
    """The stack most tests share.  Runs stop 10 s after their last viewer
    leaves, so the suite's many runs do not pile up on the worker.  Tests that
    kill or add processes use `own_stack` instead, so that no test depends on
    what an earlier one did to the shared stack."""
    s = start_stack()
    yield s
    stop_stack(s)


@pytest.fixture
def own_stack(request):
    """A stack of this test's own (one worker, one daphne unless the test asks
    otherwise with `@pytest.mark.parametrize("own_stack", [{"workers": 2}],
    indirect=True)`): kill its processes or add to them freely."""
    s = start_stack(prefix="pattern-lab-own-", **getattr(request, "param", {}))
    yield s
    stop_stack(s)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    if not chromium:
        pytest.fail("Debian's chromium is not installed (make test installs it: apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def _page(browser, base_url):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=base_url)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_default_timeout(15_000)
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _opener(page):
    """open_lab("circuit-breaker", breakers="off") -> the page, once its socket is live and drawn."""

    def _open(slug: str, **params):
        query = urlencode({**params, "fresh": 1})
        page.goto(f"/patterns/{slug}/?{query}")
        page.wait_for_selector('[data-run-id][data-connected="true"]')
        page.wait_for_selector("[data-node]")
        return page

    return _open


@pytest.fixture
def page(browser, stack):
    yield from _page(browser, stack.base_url)


@pytest.fixture
def open_lab(page):
    return _opener(page)


@pytest.fixture
def own_page(browser, own_stack):
    yield from _page(browser, own_stack.base_url)


@pytest.fixture
def open_own_lab(own_page):
    """open_lab on the test's own stack (`own_stack`)."""
    return _opener(own_page)


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
