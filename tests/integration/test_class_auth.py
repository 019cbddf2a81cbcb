"""Who may do what in a class, enforced on the server for every view and the
class socket: the class's instructor, a student of the class, another
instructor, and an anonymous visitor.  Bad joins and votes get a clear
message and change nothing."""

from __future__ import annotations

import uuid

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from ..teaching import create_instructor, login
from .helpers import post

pytestmark = pytest.mark.integration

CONTROLS = ["poll", "step-poll", "present", "close", "reveal", "hand-out", "show", "bring-back", "view", "end"]


@pytest.fixture(scope="module")
def people(browser, stack):
    """One class for the whole module (the tests only read, or change what the
    next ones do not depend on; ending the class comes last)."""
    contexts = []

    def person():
        context = browser.new_context(base_url=stack.base_url)
        contexts.append(context)
        page = context.new_page()
        page.goto("/")  # a session and a CSRF cookie
        return page

    a_name = create_instructor(stack, f"ada-{uuid.uuid4().hex[:6]}")
    b_name = create_instructor(stack, f"bob-{uuid.uuid4().hex[:6]}")
    a, b, s, anon = person(), person(), person(), person()
    login(a, a_name)
    login(b, b_name)
    resp = post(a, "/teach/classes/start/", lab="leader-election")
    assert resp.status == 200
    code = resp.url.rstrip("/").split("/")[-1]
    a.goto(f"/class/{code}/")
    resp = post(s, "/join/", code=code, name="Sam")
    assert f"/class/{code}/" in resp.url
    yield {"a": a, "b": b, "s": s, "anon": anon, "code": code}
    for c in contexts:
        c.close()


def ws_frames(stack, page, code: str):
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
    url = stack.base_url.replace("http", "ws") + f"/ws/class/{code}/"
    with connect(url, origin=stack.base_url, additional_headers={"Cookie": cookie}, open_timeout=5) as ws:
        return ws.recv(timeout=10)


def test_class_pages_by_role(people):
    code = people["code"]
    a, b, s, anon = people["a"], people["b"], people["s"], people["anon"]
    assert a.goto(f"/class/{code}/").status == 200
    assert a.get_attribute("[data-class-role]", "data-class-role") == "instructor"
    assert s.goto(f"/class/{code}/").status == 200
    assert s.get_attribute("[data-class-role]", "data-class-role") == "student"
    for outsider in (b, anon):  # not in the class: sent to the join page
        outsider.goto(f"/class/{code}/")
        assert "/join/" in outsider.url and outsider.locator("[data-class-role]").count() == 0
    assert s.request.get(f"/class/{code}/stage/").status == 200
    assert anon.request.get(f"/class/{code}/stage/").status == 403
    assert b.request.get(f"/class/{code}/stage/").status == 403


@pytest.mark.parametrize("what", CONTROLS)
def test_only_the_classes_instructor_controls_it(people, what):
    code = people["code"]
    for page in (people["s"], people["anon"]):  # not logged in: the login page, nothing done
        resp = post(page, f"/class/{code}/do/{what}/", question="Q?", choices="a\nb", step="0", student="1", t="0")
        assert "/accounts/login/" in resp.url
    resp = post(people["b"], f"/class/{code}/do/{what}/", question="Q?", choices="a\nb", step="0", student="1",
                t="0")
    assert resp.status == 404 and "no class of yours" in resp.text()
    people["a"].goto(f"/class/{code}/")
    assert people["a"].locator("[data-poll]").count() == 0  # nothing was opened by anyone else


def test_dashboard_summary_and_csv_are_the_instructors(people):
    code = people["code"]
    for path in (f"/class/{code}/dashboard/", f"/class/{code}/summary/", f"/class/{code}/summary.csv"):
        assert people["a"].request.get(path).status == 200
        assert people["b"].request.get(path).status == 404
        for page in (people["s"], people["anon"]):
            assert "/accounts/login/" in page.request.get(path).url


def test_the_class_socket_by_role(stack, people):
    code = people["code"]
    post(people["a"], f"/class/{code}/do/poll/", question="Who leads?", choices="n4\nn5")
    teacher = ws_frames(stack, people["a"], code)
    student = ws_frames(stack, people["s"], code)
    assert "data-votes" in teacher and 'data-poll-state="open"' in teacher
    assert "data-votes" not in student and 'data-poll-state="open"' in student
    for page in (people["b"], people["anon"]):
        with pytest.raises((InvalidStatus, ConnectionClosed)):
            ws_frames(stack, page, code)


def class_view(page, code: str) -> tuple[str, str]:
    """(data-view, data-view-t) of the class as this person's class page says."""
    page.goto(f"/class/{code}/")
    state = page.locator("#class-state")
    return state.get_attribute("data-view"), state.get_attribute("data-view-t")


def test_only_the_instructor_sets_the_class_view(stack, people):
    """The instructor's timeline moves everyone's: a student, another
    instructor and an anonymous visitor cannot, and bad moments are refused."""
    code = people["code"]
    a, b, s, anon = people["a"], people["b"], people["s"], people["anon"]
    a.goto(f"/class/{code}/")
    class_run = a.get_attribute("[data-run-id]", "data-run-id")
    assert class_view(s, code) == ("live", "")
    # Not the class's instructor: refused, and the class stays live.
    for page in (s, anon):
        resp = post(page, f"/class/{code}/do/view/", run=class_run, t="0")
        assert "/accounts/login/" in resp.url
    resp = post(b, f"/class/{code}/do/view/", run=class_run, t="0")
    assert resp.status == 404 and "no class of yours" in resp.text()
    assert class_view(s, code) == ("live", "")
    # The instructor looks back at t = 0: the students' page and socket say so.
    resp = post(a, f"/class/{code}/do/view/", run=class_run, t="0")
    assert resp.status == 200
    assert class_view(s, code) == ("past", "0.0")
    assert 'data-view="past"' in ws_frames(stack, s, code)
    assert s.get_attribute("[data-timeline-box]", "data-following") is not None
    assert s.locator("[data-following-note]").inner_text().startswith("Following the instructor")
    assert a.get_attribute("[data-timeline-box]", "data-following") is None
    # Bad moments and a run the class is not looking at are refused; the view stays.
    for form, status, words in (({"t": "-5"}, 400, "0 or more"), ({"t": "soon"}, 400, "number of milliseconds"),
                                ({"t": "1e12"}, 404, "in its future"), ({}, 400, "Give the moment"),
                                ({"t": "0", "run": "nosuchrun"}, 409, "no longer looking")):
        resp = post(a, f"/class/{code}/do/view/", **{"run": class_run, **form})
        assert resp.status == status and words in resp.text(), (form, resp.status, resp.text())
    assert class_view(s, code) == ("past", "0.0")
    for page in (s, anon):
        assert "/accounts/login/" in post(page, f"/class/{code}/do/view/", run=class_run, live="1").url
    assert post(b, f"/class/{code}/do/view/", run=class_run, live="1").status == 404
    assert class_view(s, code) == ("past", "0.0")
    # Back to live.
    assert post(a, f"/class/{code}/do/view/", run=class_run, live="1").status == 200
    assert class_view(s, code) == ("live", "")


def test_students_cannot_command_the_instructors_run_and_vote_once(people):
    code = people["code"]
    a, s, b = people["a"], people["s"], people["b"]
    a.goto(f"/class/{code}/")
    class_run = a.get_attribute("[data-run-id]", "data-run-id")
    resp = post(s, f"/runs/{class_run}/commands/", action="crash", args="n5")
    assert resp.status == 403 and "someone else" in resp.text()
    post(a, f"/class/{code}/do/poll/", question="Who leads?", choices="n4\nn5")
    a.goto(f"/class/{code}/")
    poll = a.get_attribute("[data-poll]", "data-poll")
    for page in (b, people["anon"]):
        resp = post(page, f"/class/{code}/vote/", poll=poll, choice="0")
        assert resp.status == 403 and "Join the class first" in resp.text()
    assert post(s, f"/class/{code}/vote/", poll=poll, choice="9").status == 400
    assert post(s, f"/class/{code}/vote/", poll="99999", choice="0").status == 404
    assert post(s, f"/class/{code}/vote/", poll=poll, choice="0").status == 200
    resp = post(s, f"/class/{code}/vote/", poll=poll, choice="1")
    assert resp.status == 409 and "already voted" in resp.text()
    post(a, f"/class/{code}/do/close/")
    resp = post(s, f"/class/{code}/vote/", poll=poll, choice="1")
    assert resp.status in (409, 429)
    # Votes are rate-limited: a flood is refused.
    statuses = [post(s, f"/class/{code}/vote/", poll=poll, choice="1").status for _ in range(8)]
    assert 429 in statuses
    a.goto(f"/class/{code}/")
    assert a.locator('[data-poll] [data-choice="0"] [data-votes]').inner_text() == "1"
    assert a.locator('[data-poll] [data-choice="1"] [data-votes]').inner_text() == "0"


@pytest.mark.parametrize("code, name, status, message", [
    ("ZZZZZ9", "Pat", 404, "There is no class with the code ZZZZZ9"),
    ("abc", "Pat", 400, "six letters and digits"),
    (None, "", 400, "Give your name"),
    (None, "x" * 31, 400, "at most 30 characters"),
    (None, "sam", 409, "already called sam"),
])
def test_bad_joins_are_refused_clearly(people, code, name, status, message):
    page = people["anon"]
    page.goto("/join/")
    page.fill("[name=code]", code or people["code"])
    page.fill("[name=name]", name)
    page.evaluate("document.querySelectorAll('input').forEach(i => { i.removeAttribute('required'); i.removeAttribute('maxlength'); })")
    with page.expect_response(lambda r: r.url.endswith("/join/") and r.request.method == "POST") as info:
        page.click("button[type=submit]")
    assert info.value.status == status
    assert message in page.locator("[role=alert]").inner_text()
    assert "Traceback" not in page.content()


def test_an_ended_class_closes_its_code(people):
    code = people["code"]
    post(people["a"], f"/class/{code}/do/end/")
    resp = post(people["anon"], "/join/", code=code, name="Late")
    assert resp.status == 410 and "has ended" in resp.text()
