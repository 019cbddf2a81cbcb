"""HTTP checks through Django's test Client (no browser, no daphne, no worker):
status codes, messages, CSRF and ownership.  The database is pytest-django's
test database; the rate limiter needs Redis, so a private redis-server runs
for the session (on a unix socket in a folder of its own)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

TOKEN = "x" * 32  # a CSRF secret the client sends as its cookie and in the header, as the page does


@pytest.fixture(scope="session")
def private_redis():
    from pattern_lab.stack import Stack

    var = Path(tempfile.mkdtemp(prefix="pattern-lab-http-"))
    s = Stack(var, quiet=True)
    s.start_redis()
    yield s.redis_url
    s.stop()
    shutil.rmtree(var, ignore_errors=True)


@pytest.fixture(autouse=True)
def redis_url(private_redis, settings):
    from pattern_lab.runs import keys

    settings.REDIS_URL = private_redis
    keys.client.cache_clear()
    keys.client().flushdb()
    yield private_redis
    keys.client.cache_clear()


class Browser(Client):
    """A visitor: Django's client with CSRF enforced, as a real browser gets it;
    `post` sends the CSRF token the way the page's htmx does (unless csrf=False)."""

    def __init__(self, uid: str):
        super().__init__(enforce_csrf_checks=True)
        self.uid = uid
        session = self.session
        session["uid"] = uid
        session.save()
        self.cookies[django_settings.SESSION_COOKIE_NAME] = session.session_key  # a signed cookie: its key is its content
        self.cookies["csrftoken"] = TOKEN

    def post(self, path, data=None, csrf: bool = True, **kw):
        headers = {"X-CSRFToken": TOKEN} if csrf else {}
        return super().post(path, data, headers=headers, **kw)


@pytest.fixture
def owner(db):
    return Browser("owner-uid-0001")


@pytest.fixture
def stranger(db):
    return Browser("stranger-uid-02")


@pytest.fixture
def run(db, owner):
    """A leader-election run that belongs to `owner` (never started: no actor is needed
    for what these tests check)."""
    from pattern_lab.runs.services import start_run

    return start_run("leader-election", {}, 1, owner.uid)
