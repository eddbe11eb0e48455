"""The task page and the form in a real browser (the harness of tests/browser_support.py:
Playwright driving Debian's Chromium against the service on the sandbox): copy buttons
that really fill the clipboard, the grouped parameter table, failed images as placeholders,
the folded timeline; the form's errors in one round, the estimate only for valid values,
and post-redirect-get after a refusal. Screenshots at 1366 and 390 px go to
``tests/screenshots/``; at 390 px what these pages show must fit without sideways scroll.
"""

import re

import pytest
import requests

from archive import budget_store
from tests.browser_support import (
    DESKTOP, PHONE, axe_violations, open_page, overflow, shoot, wait_for)
from tests.history_helpers import make_task

try:
    from playwright.sync_api import expect
except ImportError:
    expect = None

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config(app_config):
    """The sandbox, quick; no fetcher of the app's own (the tests start one)."""
    return dict(app_config, RUNWARE_SANDBOX_RESULT_DELAY=0.05, RUNWARE_SANDBOX_RETRY_BASE=0.05,
                RUNWARE_SANDBOX_RETRY_CAP=0.2, RUNWARE_ARCHIVE_FETCHER="off")


@pytest.fixture
def page(browser, live_server):
    """A desktop page allowed to read and write the clipboard."""
    page = open_page(browser, DESKTOP, permissions=["clipboard-read", "clipboard-write"])
    yield page
    page.context.close()


def task_done(url, task_uuid):
    task = requests.get(f"{url}/api/tasks/{task_uuid}", timeout=5).json()
    return (task["resultsReceived"] == task["numberResults"]
            and all(r["archived"] for r in task["results"]))


def overflowing(page, selector):
    """The elements matching ``selector`` whose right edge passes the viewport's."""
    width = page.viewport_size["width"]
    return [box for box in (e.bounding_box() for e in page.locator(selector).all())
            if box and box["x"] + box["width"] > width + 0.5]


def a_task_with_a_failure(live_server, page):
    """Two images through the sandbox, sent without a seed or steps (so with defaults),
    then a third image's failure, as a webhook brings one, into the same catalogue."""
    url = live_server.url
    prompt = "a tidal library atrium interior, golden hour"
    answer = requests.post(f"{url}/api/tasks", timeout=30, json={
        "positivePrompt": prompt, "width": 384, "height": 256, "numberResults": 2})
    task_uuid = answer.json()["taskUUID"]
    wait_for(lambda: task_done(url, task_uuid), page)
    failed = "1b0a8b7e-4a51-4d0e-9a8f-2d1e0c7b6a51"
    live_server.app.extensions["catalogue"].ingest(task_uuid, errors=[{
        "code": "contentModerated", "message": "the image was moderated",
        "taskUUID": task_uuid, "imageUUID": failed}])
    return prompt, task_uuid, failed


def test_the_task_page_copies_groups_and_shows_failures(live_server, fetcher, page):
    url = live_server.url
    prompt, task_uuid, failed = a_task_with_a_failure(live_server, page)
    page.goto(f"{url}/tasks/{task_uuid}")
    expect(page.locator(".images img")).to_have_count(2)

    # Copy prompt, then a seed: the clipboard holds exactly the text.
    page.click("[data-copy='#prompt']")
    expect(page.locator("[data-copy='#prompt']")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == prompt
    seed_button = page.locator("[data-copy^='#seed-']").first
    seed = page.locator(seed_button.get_attribute("data-copy")).inner_text()
    seed_button.click()
    assert page.evaluate("navigator.clipboard.readText()") == seed and seed.isdigit()
    expect(seed_button).to_contain_text("Copy", timeout=5000)  # reads as before again

    # The table: groups, prompt first, defaults marked, no plumbing.
    heads = [h.lower() for h in page.locator(".params-grouped .group-head th").all_inner_texts()]
    assert heads[:3] == ["prompt", "size & output", "sampling"], heads
    table = page.inner_text(".params-grouped")
    assert table.index("Prompt") < table.index("Guidance (CFG scale)")
    assert "webhookURL" not in table and "includeCost" not in table
    steps = page.locator(".params-grouped tr", has_text="Steps")
    assert "4" in steps.inner_text() and "default" in steps.inner_text()
    expect(page.locator("#request-json")).to_be_hidden()
    page.click("summary:has-text('The request as sent')")
    expect(page.locator("#request-json")).to_contain_text("webhookURL")

    # The failure: in the banner, and as its own placeholder with its error.
    assert "the image was moderated" in page.inner_text(".failures")
    placeholder = page.locator(f"#image-{failed}")
    expect(placeholder.locator(".placeholder-failed")).to_be_visible()
    assert "contentModerated" in placeholder.inner_text()

    # The timeline folds the deliveries and the archived images; a click opens them.
    group = page.locator(".event-group", has_text="delivery accepted")
    assert group.locator("summary").inner_text().startswith("2 ×")
    expect(group.locator(".timeline-inner a")).to_have_count(2)
    expect(group.locator(".timeline-inner").first).to_be_hidden()
    group.locator("summary").click()
    expect(group.locator(".timeline-inner").first).to_be_visible()
    shoot(page, "pages-task-1366", full_page=True)

    page.set_viewport_size(PHONE)
    page.goto(f"{url}/tasks/{task_uuid}")
    expect(page.locator(".images img")).to_have_count(2)
    shoot(page, "pages-task-390", full_page=True)
    assert not overflowing(page, ".task-head, .failures, .images, .parameters, "
                                 ".timeline-section, .params-grouped tr")
    assert overflow(page)["over"] == 0, overflow(page)
    assert not [e for e in page.console_errors if "Content Security Policy" in e], \
        page.console_errors


def test_the_form_reports_every_error_at_once_and_a_reload_posts_nothing(live_server, page):
    url = live_server.url
    page.goto(f"{url}/new")
    expect(page.locator("[data-estimate-value]")).to_have_text("$0.0006")

    # The live estimate prices only what the rules accept.
    page.fill("#f-numberResults", "50")
    expect(page.locator("[data-estimate-value]")).to_have_text("—")
    expect(page.locator("[data-estimate-detail]")).to_contain_text(
        "No estimate: Images must be between 1 and 20")
    page.fill("#f-numberResults", "2")
    page.fill("#f-height", "5000")
    expect(page.locator("[data-estimate-detail]")).to_contain_text("Height must be a multiple of 16")
    page.fill("#f-height", "512")
    expect(page.locator("[data-estimate-value]")).to_have_text("$0.0012")

    # A bad number next to other mistakes: all of them come back in one round.
    page.fill("#f-positivePrompt", "x")
    page.fill("#f-width", "1000")
    page.fill("#f-steps", "four")
    page.fill("#f-numberResults", "50")
    page.fill("#f-CFGScale", "lots")
    posts = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
    page.click("button[value=send]")
    page.wait_for_url(re.compile(r"/new\?draft="))
    assert len(posts) == 1
    for name in ("positivePrompt", "width", "steps", "numberResults", "CFGScale"):
        expect(page.locator(f"#e-{name}")).to_be_visible()
    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_focused()
    assert "5 fields to fix" in summary.inner_text()
    summary.locator("a", has_text="Guidance (CFG scale)").click()
    expect(page.locator("#f-CFGScale")).to_be_in_viewport()
    assert page.input_value("#f-steps") == "four"  # what was typed is kept
    expect(page.locator("[data-estimate-value]")).to_have_text("—")
    shoot(page, "pages-form-errors-1366", full_page=True)

    # Reloading shows the same and sends nothing (no POST, no "resubmit?" question).
    page.reload()
    expect(page.locator("#e-steps")).to_have_text("must be an integer")
    assert len(posts) == 1

    page.set_viewport_size(PHONE)
    page.reload()
    expect(page.locator("[data-error-summary]")).to_be_visible()
    shoot(page, "pages-form-errors-390", full_page=True)
    assert overflow(page)["over"] == 0, overflow(page)

    # Fixed, it is sent, and the browser ends on the task page.
    page.set_viewport_size(DESKTOP)
    for name, value in (("positivePrompt", "a harbor at dawn"), ("width", "512"),
                        ("steps", "4"), ("numberResults", "1"), ("CFGScale", "")):
        page.fill(f"#f-{name}", value)
    page.click("button[value=send]")
    page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
    assert not [e for e in page.console_errors if "Content Security Policy" in e], \
        page.console_errors


def test_a_refused_rerun_leaves_the_browser_on_a_get(app, live_server, page):
    catalogue = app.extensions["catalogue"]
    budget_store.set_limits(catalogue, "cli", daily="0.0001")
    task_uuid = make_task(catalogue, "a harbor", seed=5)
    page.goto(f"{live_server.url}/tasks/{task_uuid}")
    posts = []
    page.on("request", lambda r: r.method == "POST" and posts.append(r.url))
    page.click("button[value=exact]")
    page.wait_for_url(re.compile(rf"/tasks/{task_uuid}(#rerun-errors)?$"))
    expect(page.locator(".notice-error", has_text="The re-run was not sent")).to_be_visible()
    page.reload()
    assert len(posts) == 1
    expect(page.locator(".notice-error", has_text="The re-run was not sent")).to_have_count(0)


def test_the_refused_form_passes_axe(browser, live_server):
    page = open_page(browser, PHONE, bypass_csp=True)  # the CSP rightly refuses axe itself
    try:
        page.goto(f"{live_server.url}/new")
        page.fill("#f-positivePrompt", "x")
        page.fill("#f-steps", "four")
        page.click("button[value=send]")
        page.wait_for_url(re.compile(r"/new\?draft="))
        expect(page.locator("[data-error-summary]")).to_be_focused()
        assert axe_violations(page) == []
    finally:
        page.context.close()
