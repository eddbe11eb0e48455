"""The history in a real browser: Playwright driving Debian's Chromium against the service
running on the sandbox, with the image fetcher archiving as it would under ``serve``.

Skipped when Playwright or Chromium is missing, unless ``RUNWARE_ARCHIVE_REQUIRE_BROWSER=1``
(CI sets it), in which case that is a failure. Screenshots go to ``tests/screenshots/``
(git-ignored); ``RUNWARE_ARCHIVE_DOCS_SCREENSHOTS=1`` also refreshes the two in ``docs/``.
The fixtures (``browser``, ``page``, ``phone_page``) live in ``tests/browser_support.py``.
"""

import re

import pytest
import requests

try:
    from playwright.sync_api import expect
except ImportError:
    expect = None

from archive import budget_store
from tests.browser_support import shoot, wait_for

pytestmark = pytest.mark.browser

PROMPTS = [
    ("a glasshouse tea train platform at dawn, misty", 1024, 768),
    ("lantern bazaar on an ice harbor at dusk", 1024, 576),
    ("tidal library atrium interior, golden hour", 768, 1024),
    ("copper aviary market canopy, cinematic", 1024, 1024),
    ("neon alley in the rain, watercolor", 1024, 768),
    ("a lighthouse on a basalt cliff, aerial", 1024, 1024),
    ("terraced tea garden in fog, ink wash", 768, 1024),
    ("desert observatory under the milky way", 1024, 576),
    ("floating market at sunrise, macro detail", 1024, 1024),
]


@pytest.fixture
def app_config(app_config):
    """The sandbox, slow enough per result to watch the images arrive, quick otherwise."""
    return dict(app_config, RUNWARE_SANDBOX_RESULT_DELAY=1.0, RUNWARE_SANDBOX_RETRY_BASE=0.05,
                RUNWARE_SANDBOX_RETRY_CAP=0.2, RUNWARE_ARCHIVE_FETCHER="off")


def fill_the_gallery(url):
    """A few tasks through the JSON API, so the gallery has something to show."""
    made = []
    for i, (prompt, width, height) in enumerate(PROMPTS):
        response = requests.post(f"{url}/api/tasks", timeout=30, json={
            "positivePrompt": prompt, "width": width // 2, "height": height // 2,
            "numberResults": 1 + i % 2, "steps": 4})
        assert response.status_code == 202, response.text
        made.append(response.json()["taskUUID"])
    return made


def all_archived(url, uuids):
    for uuid in uuids:
        task = requests.get(f"{url}/api/tasks/{uuid}", timeout=5).json()
        if task["resultsReceived"] < task["numberResults"]:
            return False
        if not all(r["archived"] for r in task["results"]):
            return False
    return True


def task_uuid_of(page):
    return re.search(r"/tasks/([0-9a-f-]{36})", page.url)[1]


@pytest.mark.load
def test_submit_watch_search_rerun_and_verdicts(live_server, fetcher, page):
    url = live_server.url
    background = fill_the_gallery(url)

    # Submit from the form, with a seed and two images; the estimate is there before sending.
    page.goto(f"{url}/new")
    page.fill("#f-positivePrompt", "a copper aviary market canopy at golden hour")
    page.fill("#f-width", "512")
    page.fill("#f-height", "384")
    page.fill("#f-seed", "84065")
    page.fill("#f-numberResults", "2")
    expect(page.locator("[data-estimate-value]")).to_have_text("$0.0012")
    shoot(page, "new-task")
    page.click("button[value=send]")
    page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
    parent = task_uuid_of(page)

    # The images arrive while we watch: the page updates itself, never reloads.
    page.evaluate("window.stillHere = 42")
    assert page.locator(".live-note").count() == 1
    expect(page.locator("#live .images img")).to_have_count(2)
    expect(page.locator("#live")).to_have_attribute("data-live", "0")
    assert page.evaluate("window.stillHere") == 42
    assert "84065" in page.inner_text(".images") and "84066" in page.inner_text(".images")
    page.click("summary:has-text('The request as sent')")  # folded away until asked for
    page.click("[data-copy='#request-json']")  # copy the request (no error, no reload)

    # Search finds it from a prefix; the keyboard opens it.
    wait_for(lambda: all_archived(url, background), page)
    page.goto(f"{url}/")
    assert page.locator("[data-card]").count() >= 12
    shoot(page, "gallery", docs=True)
    page.fill("#q", "aviar")
    page.press("#q", "Enter")
    page.wait_for_url(re.compile(r"q=aviar"))
    assert page.locator("[data-card]").count() == 4  # two images here, two in the background
    assert page.locator("[data-summary]").inner_text().startswith("4 images in 2 tasks")
    page.fill("#q", '"golden hour" aviary')
    page.press("#q", "Enter")
    page.wait_for_url(re.compile(r"golden"))
    assert page.locator("[data-card]").count() == 2
    page.locator("body").press("j")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.card !== undefined")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/tasks/{parent}"))

    # Re-run exact: a child with the same seeds, identical bytes.
    page.click("button[value=exact]")
    page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
    exact = task_uuid_of(page)
    assert exact != parent
    expect(page.locator('[data-verdict="identical bytes"]')).to_have_count(2, timeout=40000)
    assert page.locator(".pair-label").first.inner_text() == "this · seed 84065"
    assert "same seed" in page.inner_text(".compare")
    assert parent[:8] in page.inner_text(".lineage-card")
    expect(page.locator("#live")).to_have_attribute("data-live", "0")
    page.hover(".compare")
    shoot(page, "task", docs=True)
    shoot(page, "task-full", full_page=True)

    # New seed from the parent: another picture, "differs" with its distance.
    page.goto(f"{url}/tasks/{parent}")
    page.click("button[value=new-seed]")
    page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
    fresh = task_uuid_of(page)
    assert fresh not in (parent, exact)
    expect(page.locator('[data-verdict="differs"]')).to_have_count(2, timeout=40000)
    assert "distance" in page.inner_text(".compare")
    shoot(page, "task-new-seed")

    # The parent lists both re-runs with their verdicts.
    page.goto(f"{url}/tasks/{parent}")
    lineage = page.inner_text(".relatives")
    assert exact[:8] in lineage and fresh[:8] in lineage
    assert "identical bytes" in lineage and "differs" in lineage
    shoot(page, "parent", full_page=True)

    # Delete asks first (a JavaScript confirm), then the task is gone.
    page.goto(f"{url}/tasks/{fresh}")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("text=Delete…")
    page.wait_for_url(f"{url}/")
    assert "Deleted task" in page.inner_text(".notice")
    assert requests.get(f"{url}/api/tasks/{fresh}", timeout=5).status_code == 404

    page.goto(f"{url}/deliveries")
    assert page.locator("tr.verdict-row-accepted").count() >= 10
    shoot(page, "deliveries")
    assert not [e for e in page.console_errors if "Content Security Policy" in e], \
        page.console_errors


def test_a_budget_refusal_shows_in_the_form(app, live_server, page):
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily="0.0001")
    page.goto(f"{live_server.url}/new")
    page.fill("#f-positivePrompt", "a harbor")
    page.click("button[value=send]")
    assert "budget" in page.inner_text(".notice-error").lower()
    assert page.input_value("#f-positivePrompt") == "a harbor"
    shoot(page, "budget-refused")


def test_errors_show_next_to_their_fields_without_javascript(browser, live_server):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{live_server.url}/new")
    page.fill("#f-positivePrompt", "a harbor")
    page.fill("#f-width", "1000")
    page.click("summary:has-text('LoRA')")
    page.fill("[name='lora[1].model']", "civitai:1@2")
    page.fill("[name='lora[1].weight']", "9")
    page.click("button[value=send]")
    assert "multiple of 16" in page.inner_text("#e-width")
    assert "between -4 and 4" in page.inner_text("[id='e-lora[1].weight']")
    assert page.locator("details[open]").count() == 1  # the LoRA group, with its error
    shoot(page, "form-errors", full_page=True)
    context.close()
