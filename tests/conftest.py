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


@pytest.fixture(scope="session")
def stack():
    from pattern_lab.stack import Stack, free_port

    var = Path(tempfile.mkdtemp(prefix="pattern-lab-test-"))
    # Runs stop 10 s after their last viewer leaves, so the suite's many runs
    # do not pile up on the worker's threads.
    env = {"PATTERN_LAB_IDLE_S": "10", "DATABASE_URL": f"sqlite:///{var / 'db.sqlite3'}"}
    env.pop("REDIS_URL", None)
    os.environ.pop("REDIS_URL", None)
    s = Stack(var, port=free_port(), workers=1, quiet=True, env=env, concurrency=64)
    s.start()
    s.base_url = f"http://127.0.0.1:{s.port}"
    yield s
    s.stop()
    shutil.rmtree(var, ignore_errors=True)


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


@pytest.fixture
def page(browser, stack):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=stack.base_url)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.set_default_timeout(15_000)
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def open_lab(page):
    """open_lab("circuit-breaker", breakers="off") -> the page, once its socket is live and drawn."""

    def _open(slug: str, **params):
        query = urlencode({**params, "fresh": 1})
        page.goto(f"/patterns/{slug}/?{query}")
        page.wait_for_selector('[data-run-id][data-connected="true"]')
        page.wait_for_selector("[data-node]")
        return page

    return _open


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
