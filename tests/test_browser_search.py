"""Search, the label filter, saved searches and /read (the parameters of a dropped image) in
a real browser: Playwright driving Debian's Chromium against a live server on a real
catalogue (the harness of tests/browser_support.py), at 1366 and 390 px."""

import base64
import json
import re

import pytest

from archive import metadata
from receiver.storage import get_store
from tests.browser_support import DESKTOP, PHONE, open_page, overflow, shoot
from tests.history_helpers import archive, deliver, make_task, picture

try:
    from playwright.sync_api import expect
except ImportError:
    expect = None

pytestmark = pytest.mark.browser
TASKS = [  # (prompt, label, seed)
    ("terraced tea garden in fog, ink wash", "client-a", 4242),
    ("desert observatory under the milky way", "client-b", 77),
    ("copper aviary market canopy, cinematic", "client-a", 913),
    ("a lighthouse on a basalt cliff, aerial", None, 31337),
]


@pytest.fixture
def app_config(app_config):
    return dict(app_config, RUNWARE_ARCHIVE_FETCHER="off")


@pytest.fixture
def filled(app):
    catalogue, store = app.extensions["catalogue"], get_store(app)
    made = {}
    for prompt, label, seed in TASKS:
        task = make_task(catalogue, prompt, label=label, width=1024, height=768)
        image = deliver(catalogue, task, seed)[0]
        archive(catalogue, store, image, picture(seed % 50 + 1, size=(128, 96)))
        made[seed] = task
    return made


def cards(page):
    return page.locator("[data-gallery] a[data-card]")


def fits(page):
    found = overflow(page)
    assert found["over"] == 0, found


@pytest.mark.parametrize("viewport,name", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_search_by_label_and_by_seed(live_server, filled, browser, viewport, name):
    page = open_page(browser, viewport)
    page.goto(f"{live_server.url}/")
    expect(cards(page)).to_have_count(4)
    if viewport is PHONE:  # a phone folds the filters until one is in use
        expect(page.locator(".filter-fold")).not_to_have_attribute("open", "")
        page.click(".filter-fold > summary")
    page.select_option("select[name=label]", "client-a")  # the filters send themselves
    expect(page).to_have_url(re.compile(r"[?&]label=client-a(&|$)"))
    expect(cards(page)).to_have_count(2)
    shoot(page, f"search-label-{name}")
    fits(page)
    page.goto(f"{live_server.url}/")
    page.fill("#q", "31337")
    page.press("#q", "Enter")
    expect(cards(page)).to_have_count(1)
    expect(cards(page).first).to_have_attribute("href", re.compile(f"^/tasks/{filled[31337]}#"))
    expect(page.locator(".search-reading")).to_contain_text("seed 31337")
    page.fill("#q", "client-a -aviary")
    page.press("#q", "Enter")
    expect(cards(page)).to_have_count(1)
    expect(page.locator(".card-prompt").first).to_have_text(TASKS[0][0])
    page.locator("#search-help summary").click()
    expect(page.locator("#search-help")).to_contain_text("seed:123456")
    page.fill("#save-name", "client work, no birds")
    page.click(".save-search button")
    expect(page.locator(".saved-item a")).to_have_text("client work, no birds")
    expect(page.locator(".saved-item a")).to_have_attribute("aria-current", "true")
    shoot(page, f"search-saved-{name}")
    fits(page)
    page.goto(f"{live_server.url}/")
    page.click(".saved-item a")
    expect(cards(page)).to_have_count(1)
    page.click(".saved-item button")
    expect(page.locator(".saved-item")).to_have_count(0)
    assert page.console_errors == []
    page.context.close()


def our_png():
    params = {"positivePrompt": "a harbor at dusk, lanterns", "negativePrompt": "blurry",
              "width": 768, "height": 1024, "steps": 4, "model": "runware:twinflow-z-image-turbo@0"}
    task = {"params": json.dumps(params), "model": params["model"], "task_uuid": "elsewhere",
            "provider": "runware", "parent_task_uuid": None, "rerun_mode": None}
    result = {"seed": 123456, "image_uuid": "img", "cost": 0.0006, "sha256": None}
    return metadata.embed(picture(5, size=(96, 128), fmt="PNG"), "png", task, result)


@pytest.mark.parametrize("viewport,name", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_a_picked_and_a_dropped_image_fill_the_form(live_server, browser, viewport, name,
                                                    tmp_path):
    page = open_page(browser, viewport)
    page.goto(f"{live_server.url}/new")
    page.click("a[href='/read']")
    expect(page.locator("h1")).to_have_text("Read an image’s parameters")
    shoot(page, f"read-empty-{name}")
    fits(page)
    picked = tmp_path / "harbor.png"
    picked.write_bytes(our_png())
    page.set_input_files("#read-file", str(picked))  # picking sends the form
    expect(page.locator("[data-param=seed]")).to_have_text("123456")
    expect(page.locator("[data-param=negativePrompt]")).to_have_text("blurry")
    shoot(page, f"read-result-{name}", full_page=True)
    fits(page)
    page.goto(f"{live_server.url}/read")
    dropped = page.evaluate_handle(
        """(data) => { const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
                       const transfer = new DataTransfer();
                       transfer.items.add(new File([bytes], "dropped.png", {type: "image/png"}));
                       return transfer; }""", base64.b64encode(our_png()).decode())
    page.dispatch_event("main", "dragenter", {"dataTransfer": dropped})
    expect(page.locator("[data-drop-zone]")).to_have_class("drop-zone dragging")
    page.dispatch_event("main", "drop", {"dataTransfer": dropped})
    expect(page.locator("#read-title")).to_contain_text("dropped.png")
    page.click("[data-open-form]")
    expect(page.locator("#f-seed")).to_have_value("123456")
    expect(page.locator("#f-positivePrompt")).to_have_value("a harbor at dusk, lanterns")
    expect(page.locator("#f-width")).to_have_value("768")
    assert page.console_errors == []
    page.context.close()


def test_a_file_that_is_not_an_image_says_so(live_server, browser, tmp_path):
    page = open_page(browser, PHONE)
    page.goto(f"{live_server.url}/read")
    junk = tmp_path / "notes.txt"
    junk.write_text("not a picture")
    page.set_input_files("#read-file", str(junk))
    expect(page.locator("[data-read-error]")).to_have_text(
        "notes.txt is not a PNG, JPEG or WEBP image.")
    shoot(page, "read-error-phone")
    fits(page)
    page.context.close()


@pytest.mark.parametrize("viewport,name", [(DESKTOP, "desktop"), (PHONE, "phone")])
def test_the_budget_form_on_costs(live_server, app, browser, viewport, name):
    page = open_page(browser, viewport)
    page.goto(f"{live_server.url}/costs")
    form = page.locator("form#budgets")
    form.locator("input[name=daily]").fill("0.04")
    form.locator("button[type=submit]").click()
    expect(page.locator(".notice-info")).to_contain_text("Budgets set: daily $0.0400")
    expect(page.locator("form#budgets input[name=daily]")).to_have_value("0.04")
    expect(page.locator("#budget-daily-source")).to_contain_text("set on this page")
    box = page.locator("form#budgets").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= viewport["width"], box
    page.locator("form#budgets").scroll_into_view_if_needed()
    shoot(page, f"costs-budget-form-{name}")
    assert app.extensions["catalogue"].conn.execute(
        "SELECT limit_usd, source FROM budget_limits WHERE period = 'daily'").fetchone() == \
        (0.04, "ui")
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_the_new_pages_pass_axe(live_server, filled, browser, viewport, tmp_path):
    """axe-core (from npm, injected: the context bypasses the CSP for it alone) finds no
    serious or critical problem on /read (empty and read), the gallery with a search, a
    saved search and its notices, and the budget form."""
    from tests.browser_support import axe_violations

    page = open_page(browser, viewport, bypass_csp=True)
    problems = []
    page.goto(f"{live_server.url}/?q=client-a+%22fog")
    page.fill("#save-name", "fog work")
    page.click(".save-search button")
    expect(page.locator(".saved-item a")).to_have_text("fog work")
    problems += [f"gallery: {line}" for line in axe_violations(page)]
    for path in ("/read", "/costs", "/new"):
        page.goto(f"{live_server.url}{path}")
        problems += [f"{path}: {line}" for line in axe_violations(page)]
    picked = tmp_path / "harbor.png"
    picked.write_bytes(our_png())
    page.goto(f"{live_server.url}/read")
    page.set_input_files("#read-file", str(picked))
    expect(page.locator("[data-param=seed]")).to_have_text("123456")
    problems += [f"/read (read): {line}" for line in axe_violations(page)]
    assert not problems, "\n".join(problems)
    page.context.close()
