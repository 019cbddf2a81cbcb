"""A whole class through the browser: one instructor and three students in
separate browser contexts: join, follow a crash live, a poll opened, voted,
revealed and graded by the run, the run handed out, a student's fault on the
dashboard, that student's run shown to the class, the class ended, the summary."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from ..conftest import screenshot
from ..integration.helpers import post
from ..teaching import login, new_scenario

pytestmark = pytest.mark.browser
LIVE = "[data-run-id]"

SCENARIO = """\
lab: write-ahead-log
title: A log that is never flushed
summary: Writes are acknowledged before they reach the disk.
params: {flush: never, rate: 0}
seed: 1
steps:
  - title: A write
    ask:
      question: After SET k1, how many records wait in memory, not yet on disk?
      choices: [0, 1, 2]
      answer: node.db.unflushed
    do: [set k1 a]
    expect:
      when: "length(wal.table) == `1`"
      within: 3s
  - title: Pull the plug
    do: [crash db]
"""


@pytest.fixture
def room(browser, stack, instructor):
    contexts = []

    def person(width=1400, height=900):
        context = browser.new_context(viewport={"width": width, "height": height}, base_url=stack.base_url)
        contexts.append(context)
        page = context.new_page()
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.on("dialog", lambda d: d.accept())
        page.set_default_timeout(15_000)
        return page

    yield person
    for c in contexts:
        c.close()


def test_a_class_from_join_to_summary(room, instructor):
    teacher = room()
    login(teacher, instructor)
    sid = new_scenario(teacher, SCENARIO)
    teacher.goto("/teach/")
    teacher.click(f'[data-start-class="{sid}"]')
    expect(teacher.locator("[data-class-role]")).to_have_attribute("data-class-role", "instructor")
    code = teacher.get_attribute("[data-class-code]", "data-class-code")
    assert len(code) == 6
    expect(teacher.locator(".qr svg")).to_be_visible()
    teacher.wait_for_selector('[data-run-id][data-connected="true"]')

    students = {}
    for name in ("Ann", "Bo", "Cy"):
        s = room(390, 844)
        s.goto("/join/")
        s.fill("[name=code]", code.lower())
        s.fill("[name=name]", name)
        s.click("button[type=submit]")
        expect(s.locator("[data-class-role]")).to_have_attribute("data-class-role", "student")
        s.wait_for_selector('[data-run-id][data-connected="true"]')
        students[name] = s
    expect(teacher.locator("[data-student]")).to_have_count(3)
    # Students follow the instructor's run, read-only.
    class_run = teacher.get_attribute("[data-run-id]", "data-run-id")
    for s in students.values():
        assert s.get_attribute("[data-run-id]", "data-run-id") == class_run
        assert s.get_attribute("[data-run-id]", "data-owner") == "false"

    # A prediction poll from the scenario's question.
    teacher.click('[data-step-poll="0"]')
    for s in students.values():
        expect(s.locator("[data-poll]")).to_have_attribute("data-poll-state", "open")
        expect(s.locator("[data-poll] [data-votes]")).to_have_count(0)  # no counts before the reveal
    students["Ann"].click('[data-poll] [data-choice="1"]')
    students["Bo"].click('[data-poll] [data-choice="1"]')
    students["Cy"].click('[data-poll] [data-choice="2"]')
    expect(students["Cy"].locator("#vote-msg")).to_contain_text("Your vote: 2")
    expect(teacher.locator('[data-poll] [data-choice="1"] [data-votes]')).to_have_text("2")
    expect(teacher.locator('[data-poll] [data-choice="2"] [data-votes]')).to_have_text("1")
    # A second vote is refused.
    students["Cy"].evaluate("document.querySelectorAll('[data-poll] [data-choice]').forEach(b => b.disabled = false)")
    students["Cy"].click('[data-poll] [data-choice="0"]')
    expect(students["Cy"].locator("#vote-msg")).to_contain_text("already voted")
    teacher.click("[data-poll-close]")
    for s in students.values():
        expect(s.locator("[data-poll]")).to_have_attribute("data-poll-state", "closed")
    # The run acts (the step's command), everyone sees it, then the reveal grades it.
    teacher.click('[data-present="0"]')
    for s in students.values():
        expect(s.locator('[data-node="db"]')).to_contain_text("1 keys", timeout=10_000)
    teacher.click("[data-poll-reveal]")
    for s in students.values():
        poll = s.locator("[data-poll]")
        expect(poll).to_have_attribute("data-poll-state", "revealed")
        expect(poll.locator('[data-choice="1"]')).to_have_attribute("data-correct", "true")
        expect(poll.locator('[data-choice="2"]')).to_have_attribute("data-correct", "false")
        expect(poll.locator('[data-choice="1"] [data-votes]')).to_have_text("2")

    # Hand out: each student gets a private fork at this moment, and may act on it.
    teacher.click("[data-hand-out]")
    forks = set()
    for s in students.values():
        s.wait_for_function("document.querySelector('[data-run-id]')?.dataset.owner === 'true'")
        s.wait_for_selector('[data-run-id][data-connected="true"]')
        forks.add(s.get_attribute("[data-run-id]", "data-run-id"))
    assert len(forks) == 3 and class_run not in forks
    cy = students["Cy"]
    cy.wait_for_selector('[data-node="db"]')
    cy.click('[data-action="crash"][data-target="db"]')
    expect(cy.locator('[data-node="db"]')).to_have_attribute("data-status", "down")
    cy.click('[data-action="restart"][data-target="db"]')
    expect(cy.locator('[data-check="no-acked-write-lost"]')).to_have_attribute("data-ok", "false", timeout=10_000)
    tile = teacher.locator('[data-student][data-name="Cy"]')
    expect(tile).to_have_attribute("data-ok", "false", timeout=10_000)
    expect(tile).to_contain_text("restart db")
    expect(teacher.locator('[data-student][data-name="Ann"]')).to_have_attribute("data-ok", "true")

    # Show Cy's run to the class: everyone watches it, read-only except for Cy.
    cy_run = cy.get_attribute("[data-run-id]", "data-run-id")
    tile.locator("[data-show-student]").click()
    for s in students.values():
        s.wait_for_function(f"document.querySelector('[data-run-id]')?.dataset.runId === '{cy_run}'")
        # Shown to the class, Cy's run is read-only for everyone, Cy included.
        assert s.get_attribute("[data-run-id]", "data-owner") == "false"
    expect(students["Ann"].locator("[data-stage-note]")).to_contain_text("Cy's run")
    expect(students["Ann"].locator('[data-check="no-acked-write-lost"]')).to_have_attribute("data-ok", "false")
    # Ann cannot command it: no controls on her screen, and the server refuses a command sent anyway.
    expect(students["Ann"].locator('[data-action="crash"][data-target="db"]')).to_be_hidden()
    resp = post(students["Ann"], f"/runs/{cy_run}/commands/", action="crash", args="db")
    assert resp.status == 403 and "someone else" in resp.text()

    # End the class: the code closes, the summary lists attendance and the poll.
    teacher.click("[data-end-class]")
    teacher.wait_for_selector("[data-class-summary]")
    for name in ("Ann", "Bo", "Cy"):
        expect(teacher.locator(f'[data-attendee="{name}"]')).to_be_visible()
    expect(teacher.locator("[data-summary-poll]")).to_contain_text("what the run did: 1")
    csv = teacher.request.get(f"/class/{code}/summary.csv")
    assert csv.status == 200 and "attachment" in csv.headers["content-disposition"]
    assert "Cy" in csv.text() and "poll 1" in csv.text()
    expect(students["Ann"].locator("[data-class-ended]")).to_be_visible()
    late = room()
    late.goto("/join/")
    late.fill("[name=code]", code)
    late.fill("[name=name]", "Dee")
    late.click("button[type=submit]")
    expect(late.locator("[role=alert]")).to_contain_text("has ended")
    for page in (teacher, *students.values()):
        assert not page.errors, page.errors


def test_students_follow_the_instructors_time_travel(room, instructor):
    """The instructor looks back at the class run: every student sees the same
    past moment (read-only, also after a reload), follows each step, and is
    live again when the instructor is."""
    teacher = room()
    login(teacher, instructor)
    teacher.goto("/")
    resp = post(teacher, "/teach/classes/start/", lab="leader-election")
    assert resp.status == 200
    code = resp.url.rstrip("/").split("/")[-1]
    teacher.goto(f"/class/{code}/")
    teacher.wait_for_selector('[data-run-id][data-connected="true"]')
    rid = teacher.get_attribute("[data-run-id]", "data-run-id")
    student = room()
    student.goto(f"/join/?code={code}")
    student.fill("[name=name]", "Ann")
    student.click("button[type=submit]")
    student.wait_for_selector('[data-run-id][data-connected="true"]')
    assert student.get_attribute("[data-run-id]", "data-run-id") == rid
    # The student's timeline is the instructor's: no controls of their own.
    expect(student.locator("[data-following-note]")).to_contain_text("Following the instructor")
    expect(student.locator("[data-timeline]")).to_be_disabled()
    expect(student.locator("[data-step-back]")).to_be_disabled()
    expect(teacher.locator("[data-timeline]")).to_be_enabled()

    # The instructor crashes the leader a second into the run; the student sees it live.
    teacher.wait_for_function(f"+document.getElementById('meta-{rid}').dataset.t >= 1000")
    teacher.click(f'#nodes-{rid} [data-action="crash"][data-target="n5"]')
    expect(student.locator('g[data-node="n5"]')).to_have_attribute("data-status", "down")
    crash_t = next(m[0] for m in teacher.request.get(f"/runs/{rid}/history.json").json()["marks"]
                   if m[2] == "crash")

    # The instructor scrubs back to before the crash: the student sees that moment.
    before = int(crash_t) - 200
    teacher.locator("[data-timeline]").fill(str(before))
    expect(teacher.locator(LIVE)).to_have_attribute("data-t", str(before))
    for page in (teacher, student):
        expect(page.locator(LIVE)).to_have_attribute("data-view", "past")
        expect(page.locator(LIVE)).to_have_attribute("data-t", str(before))
        expect(page.locator('g[data-node="n5"]')).to_have_attribute("data-status", "up")
        expect(page.locator('g[data-node="n5"]')).to_have_attribute("data-role", "leader")
    expect(student.locator(".past-banner")).to_contain_text("You are looking at the past")
    expect(student.locator("[data-back-to-live]")).to_be_hidden()  # only the instructor leaves the past

    # The instructor steps forward event by event to the crash; the student follows each step.
    t = float(before)
    for _ in range(40):
        expected = teacher.request.get(f"/runs/{rid}/seek/?t={t}").json()["next_t"]
        teacher.click("[data-step-forward]")
        for page in (teacher, student):
            page.wait_for_function(f"+document.querySelector('{LIVE}').dataset.t === {expected!r}")
        t = expected
        if t >= crash_t:
            break
    assert t == crash_t
    expect(student.locator('g[data-node="n5"]')).to_have_attribute("data-status", "down")
    expect(student.locator("ol.log li", has_text="n5 crashed")).to_have_count(1)
    # And one step back: the moment before the crash again.
    expected = teacher.request.get(f"/runs/{rid}/seek/?t={crash_t}").json()["prev_t"]
    teacher.click("[data-step-back]")
    student.wait_for_function(f"+document.querySelector('{LIVE}').dataset.t === {expected!r}")
    expect(student.locator('g[data-node="n5"]')).to_have_attribute("data-status", "up")
    expect(student.locator("ol.log li", has_text="n5 crashed")).to_have_count(0)
    screenshot(student, "class-student-follows-the-past")

    # A student who reloads now sees the same past moment.
    student.reload()
    student.wait_for_function(f"+document.querySelector('{LIVE}').dataset.t === {expected!r}")
    expect(student.locator(LIVE)).to_have_attribute("data-view", "past")
    expect(student.locator('g[data-node="n5"]')).to_have_attribute("data-status", "up")

    # Back to live: the student is live again, n5 down as it is now.
    teacher.click("[data-back-to-live]")
    for page in (teacher, student):
        expect(page.locator(LIVE)).to_have_attribute("data-view", "live")
        expect(page.locator(LIVE)).to_have_attribute("data-t", "")
        expect(page.locator('g[data-node="n5"]')).to_have_attribute("data-status", "down")
    expect(student.locator(".past-banner")).to_be_hidden()
    for page in (teacher, student):
        assert not page.errors, page.errors
