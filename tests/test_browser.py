"""The history in a real browser: Playwright driving Debian's Chromium against the service
running on the sandbox, with the image fetcher archiving as it would under ``serve``.

Skipped when Playwright or Chromium is missing, unless ``RUNWARE_ARCHIVE_REQUIRE_BROWSER=1``
(CI sets it), in which case that is a failure. Screenshots go to ``tests/screenshots/``
(git-ignored); ``RUNWARE_ARCHIVE_DOCS_SCREENSHOTS=1`` also refreshes the two in ``docs/``.
"""

import os
import re
from pathlib import Path

import pytest
import requests
from PIL import Image


try:  # Waiting goes through expect(): wait_for_function's eval is refused by our CSP.
    from playwright import sync_api
    from playwright.sync_api import expect
except ImportError:
    sync_api = expect = None

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "tests" / "screenshots"
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


def playwright_or_skip():
    """Playwright's sync API, or a skip (a failure where the browser is required)."""
    required = os.environ.get("RUNWARE_ARCHIVE_REQUIRE_BROWSER") == "1"
    sync_playwright = sync_api.sync_playwright if sync_api else None
    missing = ("playwright is not installed" if sync_playwright is None else
               f"no Chromium at {CHROMIUM}" if not os.access(CHROMIUM, os.X_OK) else None)
    if missing and required:
        pytest.fail(f"browser tests are required here, but {missing}")
    if missing:
        pytest.skip(missing)
    return sync_playwright


@pytest.fixture
def app_config(app_config):
    """The sandbox, slow enough per result to watch the images arrive, quick otherwise."""
    return dict(app_config, RUNWARE_SANDBOX_RESULT_DELAY=1.0, RUNWARE_SANDBOX_RETRY_BASE=0.05,
                RUNWARE_SANDBOX_RETRY_CAP=0.2, RUNWARE_ARCHIVE_FETCHER="off")


@pytest.fixture
def browser():
    sync_playwright = playwright_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1360, "height": 860},
                                  device_scale_factor=1, color_scheme="light")
    page = context.new_page()
    page.set_default_timeout(30000)
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    yield page
    context.close()


def shoot(page, name, *, docs=False, full_page=False):
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if docs and os.environ.get("RUNWARE_ARCHIVE_DOCS_SCREENSHOTS") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        # 256 colours: a fifth of the bytes, and the pages are mostly flat colour anyway.
        with Image.open(path) as shot:
            shot.convert("RGB").quantize(256).save(ROOT / "docs" / f"{name}.png", optimize=True)


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


def wait_for(predicate, page, timeout=30.0):
    for _ in range(int(timeout * 10)):
        if predicate():
            return
        page.wait_for_timeout(100)
    assert predicate()


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
    app.config["RUNWARE_ARCHIVE_BUDGET_DAILY"] = "0.0001"
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
