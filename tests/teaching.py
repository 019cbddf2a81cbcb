"""Helpers for the instructors' tests: make an instructor in the test stack's
database (with the real management command), log in, write a scenario."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from playwright.sync_api import expect

from pattern_lab.stack import BASE_DIR

PASSWORD = "correct horse battery 7"


def create_instructor(stack, name: str) -> str:
    env = {**stack.env, "PATTERN_LAB_PASSWORD": PASSWORD}
    out = subprocess.run([sys.executable, "manage.py", "createinstructor", name], cwd=BASE_DIR, env=env,
                         capture_output=True, text=True, check=True)
    assert "is an instructor" in out.stdout
    return name


@pytest.fixture
def instructor(stack):
    return create_instructor(stack, f"ada-{uuid.uuid4().hex[:6]}")


def login(page, name: str, password: str = PASSWORD):
    page.goto("/accounts/login/")
    page.fill("#id_username", name)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def new_scenario(page, text: str, visibility: str = "private") -> str:
    page.goto("/teach/scenarios/new/?lab=leader-election")
    page.fill("[data-editor]", text)
    page.select_option("select[name=visibility]", visibility)
    page.click("[data-save]")
    expect(page.locator("[data-permalink]")).to_be_visible()
    return page.url.split("/teach/scenarios/")[1].split("/")[0]
