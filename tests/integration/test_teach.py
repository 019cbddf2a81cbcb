"""The instructor's side: accounts (throttled login), the scenario library
(editor with line-numbered errors, versions, import, export, visibility,
copy, recording a run, a permalink that plays it) and who may do what."""

from __future__ import annotations

import json
import uuid

import pytest
from playwright.sync_api import expect

from ..teaching import create_instructor, login, new_scenario
from .helpers import post

pytestmark = pytest.mark.integration

@pytest.fixture
def teacher(page, instructor):
    login(page, instructor)
    expect(page).to_have_url("/teach/")
    return page


SCENARIO = """\
lab: leader-election
title: Leader crash for class
summary: The leader dies and the next highest takes over.
seed: 7
steps:
  - title: Crash it
    ask:
      question: Who leads next?
      choices: [n3, n4]
      answer: "nodes[?role == 'leader'].id | [0]"
    do: [crash n5]
    expect:
      when: "node.n4.role == 'leader'"
      within: 6s
  - title: Bring it back
    do: [restart n5]
"""


def test_createinstructor_and_a_throttled_login(stack, browser):
    name = create_instructor(stack, f"grace-{uuid.uuid4().hex[:6]}")
    context = browser.new_context(base_url=stack.base_url)
    page = context.new_page()
    try:
        resp = page.goto("/teach/")
        assert "/accounts/login/" in page.url and resp.status == 200
        for _ in range(5):
            login(page, name, "wrong password")
            expect(page.locator("[role=alert]")).to_contain_text("do not match")
        # The sixth try is refused even with the right password: wait a while.
        login(page, name)
        expect(page.locator("[role=alert]")).to_contain_text("Too many failed attempts")
        assert "/accounts/login/" in page.url
    finally:
        context.close()


def test_the_editor_shows_mistakes_with_their_line_and_keeps_versions(teacher):
    page = teacher
    page.goto("/teach/scenarios/new/?lab=leader-election")
    page.fill("[data-editor]", SCENARIO.replace("choices: [n3, n4]", "choices: [n3]"))
    expect(page.locator("#check [data-error-line]")).to_have_attribute("data-error-line", "9")
    expect(page.locator("#check")).to_contain_text("needs at least 2 entries")
    page.fill("[data-editor]", SCENARIO)
    expect(page.locator("#check [data-valid]")).to_contain_text("2 steps, 1 questions")
    page.click("[data-save]")
    expect(page.locator("[data-permalink]")).to_be_visible()
    sid = page.url.split("/teach/scenarios/")[1].split("/")[0]
    # A bad save changes nothing and loses nothing.
    broken = SCENARIO + "  - say: nothing to do\n"
    page.fill("[data-editor]", broken)
    page.click("[data-save]")
    expect(page.locator("[role=alert]")).to_contain_text("nothing to do")
    assert page.input_value("[data-editor]") == broken
    # An edit is a new version; saving the same text again is not.
    page.fill("[data-editor]", SCENARIO.replace("Leader crash for class", "Leader crash, take two"))
    page.click("[data-save]")
    expect(page.locator("[data-saved]")).to_contain_text("version 2")
    page.click("[data-save]")
    expect(page.locator("[data-saved]")).to_contain_text("version 2")
    text = page.request.get(f"/s/{sid}/scenario.yaml")
    assert text.status == 200 and "take two" in text.text()
    assert "attachment" in text.headers["content-disposition"]


def test_import_json_and_bad_files(teacher, tmp_path):
    page = teacher
    good = tmp_path / "old.json"
    good.write_text(json.dumps({"lab": "leader-election", "seed": 3, "params": {"nodes": 5},
                                "commands": [{"t": "1.5s", "action": "crash", "args": ["n5"], "note": "The leader dies"}]}))
    page.set_input_files("input[name=file]", str(good))
    page.click("form[action$='/import/'] button")
    editor = page.locator("[data-editor]")
    expect(editor).to_be_visible()
    value = editor.input_value()
    assert "title: The leader dies" in value and "at: 1500ms" in value and "crash n5" in value
    page.goto("/teach/")
    for name, content, message in [
        ("tag.yaml", "lab: !!python/object/apply:os.system ['true']\n", "tags"),
        ("bad.json", '{"lab": "leader-election", "commands": [', "not valid JSON"),
        ("huge.yaml", "#" * 300_000, "at most 200 kB"),
        ("nolab.yaml", SCENARIO.replace("lab: leader-election", "lab: nope"), "no lab 'nope'"),
    ]:
        path = tmp_path / name
        path.write_text(content)
        page.goto("/teach/")
        page.set_input_files("input[name=file]", str(path))
        with page.expect_response(lambda r: "/import/" in r.url) as info:
            page.click("form[action$='/import/'] button")
        assert info.value.status == 400, name
        expect(page.locator("[role=alert]")).to_contain_text(message)
        assert "Traceback" not in page.content()


def test_visibility_copy_and_who_may_do_what(stack, browser, teacher):
    page = teacher
    private = new_scenario(page, SCENARIO.replace("Leader crash for class", "Private one"), "private")
    public = new_scenario(page, SCENARIO.replace("Leader crash for class", "Public one"), "public")
    other_name = create_instructor(stack, f"alan-{uuid.uuid4().hex[:6]}")
    context = browser.new_context(base_url=stack.base_url)
    other = context.new_page()
    anon_context = browser.new_context(base_url=stack.base_url)
    anon = anon_context.new_page()
    try:
        login(other, other_name)
        other.goto("/teach/")
        expect(other.locator(f'[data-public="{public}"]')).to_be_visible()
        expect(other.locator(f'[data-public="{private}"]')).to_have_count(0)
        # Someone else's scenario cannot be edited, saved or seen when private.
        assert other.goto(f"/teach/scenarios/{public}/").status == 404
        resp = post(other, f"/teach/scenarios/{public}/save/", text=SCENARIO)
        assert resp.status == 404
        assert other.request.get(f"/s/{private}/scenario.yaml").status == 404
        resp = post(other, f"/teach/scenarios/{private}/copy/")
        assert resp.status == 403
        # A public one can be copied into one's own library.
        other.goto("/teach/")
        other.click(f'[data-copy="{public}"]')
        expect(other.locator("[role=status]")).to_contain_text("Copied")
        assert "Public one" in other.locator("[data-editor]").input_value()
        # Anonymous visitors: no teaching pages, but unlisted/public permalinks play.
        anon.goto("/teach/")
        assert "/accounts/login/" in anon.url
        assert anon.goto(f"/s/{private}/").status == 404
        assert anon.goto(f"/s/{public}/").status == 200
        anon.wait_for_selector("[data-lesson]")
        assert "/accounts/login/" in post(anon, f"/teach/scenarios/{public}/copy/").url
    finally:
        context.close()
        anon_context.close()


def test_record_a_run_then_play_it_from_its_permalink(teacher):
    page = teacher
    page.goto("/patterns/leader-election/?fresh=1&seed=7")
    page.wait_for_selector('[data-run-id][data-connected="true"]')
    page.wait_for_selector("[data-node]")
    page.click('[data-action="crash"][data-target="n5"]')
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-status", "down")
    page.click("[data-record]")
    editor = page.locator("[data-editor]")
    expect(editor).to_be_visible()
    assert "do:\n  - crash n5" in editor.input_value() or "- crash n5" in editor.input_value()
    page.click("[data-permalink]")
    page.wait_for_selector('[data-run-id][data-connected="true"]')
    page.click("[data-show-me]")
    expect(page.locator('[data-step-id="0"] [data-reveal]')).to_be_visible(timeout=15_000)
    expect(page.locator('[data-node="n5"]')).to_have_attribute("data-status", "down")


def test_students_and_strangers_cannot_record_or_edit(page, stack):
    page.goto("/patterns/leader-election/?fresh=1")
    page.wait_for_selector('[data-run-id][data-connected="true"]')
    rid = page.get_attribute("[data-run-id]", "data-run-id")
    assert page.locator("[data-record]").count() == 0
    resp = post(page, f"/teach/record/{rid}/")
    assert resp.status == 200 and "/accounts/login/" in resp.url
    resp = post(page, "/teach/scenarios/create/", text=SCENARIO)
    assert "/accounts/login/" in resp.url
