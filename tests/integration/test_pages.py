"""The key pages render, and every path they link to, post to or fetch is
one the site answers (the paths are built with {% url %}, so a renamed or
mistyped route shows up here rather than as a dead link)."""

import re
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import pytest
from django.urls import Resolver404, resolve

pytestmark = pytest.mark.integration

# Attributes that hold a path: href, action, src, hx-get/hx-post, ws-connect, data-*-url, data-src.
PATH_ATTR = re.compile(r'\b(href|action|src|data-src|hx-get|hx-post|ws-connect|data-[\w-]*url)="([^"#]*)')


def opener():
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))


def fetch(browser, url):
    with browser.open(url, timeout=30) as resp:
        return resp.status, resp.geturl(), resp.read().decode()


def paths_in(html: str) -> set[tuple[str, str]]:
    out = set()
    for attr, value in PATH_ATTR.findall(html):
        value = value.replace("&amp;", "&").split("?")[0]
        if value.startswith("/") and not value.startswith("/static/"):
            out.add((attr, value))
    return out


def check_paths(html: str) -> int:
    paths = paths_in(html)
    for attr, value in paths:
        urlconf = "pattern_lab.routing" if attr == "ws-connect" else None
        try:
            resolve(value.replace("__t__", "1500"), urlconf=urlconf)
        except Resolver404:
            pytest.fail(f'{attr}="{value}" is not a path the site answers')
    return len(paths)


def test_key_pages_render_with_working_paths(stack):
    b = opener()
    base = stack.base_url
    status, _, home = fetch(b, base + "/")
    assert status == 200 and 'href="/patterns/leader-election/"' in home
    assert check_paths(home) >= 17  # every lab, at least once

    status, _, lab = fetch(b, base + "/patterns/bulkhead/?fresh=1")
    assert status == 200
    rid = re.search(r'data-run-id="(\w+)"', lab).group(1)
    for expected in (f'hx-post="/runs/{rid}/commands/"', f'ws-connect="/ws/runs/{rid}/"',
                     f'action="/runs/{rid}/restart/"', 'action="/patterns/bulkhead/scenario/"',
                     f'data-permalink-url="/runs/{rid}/at/__t__/"', f'href="/runs/{rid}/scenario.json"'):
        assert expected in lab
    assert check_paths(lab) >= 15

    status, url, lesson = fetch(b, base + "/patterns/leader-election/learn/")
    assert status == 200 and "/patterns/leader-election/learn/" in url
    assert 'hx-post="/lessons/' in lesson
    check_paths(lesson)

    status, _, moment = fetch(b, f"{base}/runs/{rid}/at/0/")
    assert status == 200 and f'action="/runs/{rid}/fork-at/"' in moment
    check_paths(moment)

    status, _, login = fetch(b, base + "/accounts/login/")
    assert status == 200 and 'href="/join/"' in login and 'action="/accounts/login/"' in login
    check_paths(login)
    status, _, join = fetch(b, base + "/join/")
    assert status == 200 and 'action="/join/"' in join
    check_paths(join)


def test_instructor_pages_send_to_login(stack):
    b = opener()
    status, url, html = fetch(b, stack.base_url + "/teach/")
    assert status == 200 and urllib.parse.urlparse(url).path == "/accounts/login/"
    assert "next=/teach/" in urllib.parse.unquote(url)
