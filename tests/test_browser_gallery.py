"""The viewer and the gallery in a real browser (the harness of tests/browser_support.py:
Playwright driving Debian's Chromium against a live server on a real catalogue).

The catalogue is filled the way the service fills it (tasks recorded, results ingested,
images put in the store), with pictures of the task's own proportions, so the tests do
not wait for the sandbox's webhooks.
"""

import re
import zipfile

import pytest
import requests

from receiver.storage import get_store
from sandbox import render
from tests.history_helpers import archive, deliver, make_task
from tests.browser_support import DESKTOP, PHONE, open_page, shoot

try:
    from playwright.sync_api import expect
except ImportError:
    expect = None

pytestmark = pytest.mark.browser
# (prompt, width, height, images): a portrait, a wide one, squares, a batch of three.
TASKS = [
    ("terraced tea garden in fog, ink wash", 768, 1024, 1),
    ("desert observatory under the milky way", 1024, 576, 1),
    ("copper aviary market canopy, cinematic", 1024, 1024, 1),
    ("a lighthouse on a basalt cliff, aerial", 1024, 768, 3),
]


@pytest.fixture
def app_config(app_config):
    return dict(app_config, RUNWARE_ARCHIVE_FETCHER="off")


def fill(app, tasks=TASKS, copies=1):
    """Record ``tasks`` (``copies`` times), deliver and archive their images; returns
    ``[(taskUUID, [imageUUID, …]), …]`` oldest first."""
    catalogue, store = app.extensions["catalogue"], get_store(app)
    made, seed = [], 1000
    for _ in range(copies):
        for prompt, width, height, count in tasks:
            task = make_task(catalogue, prompt, width=width, height=height,
                             numberResults=count)
            images = deliver(catalogue, task, *range(seed, seed + count))
            for n, image in enumerate(images):
                archive(catalogue, store, image, render.encode(render.render(
                    {"width": width // 4, "height": height // 4, "positivePrompt": prompt},
                    seed + n)))
            seed += count
            made.append((task, images))
    return made


@pytest.fixture
def filled(app):
    return fill(app)


def focused(page, selector):
    """Whether the element that has focus matches ``selector``."""
    return page.evaluate(f"document.activeElement.matches({selector!r})")


def test_the_viewer_on_a_task_page_keys_zoom_and_focus(live_server, filled, page):
    task, images = filled[-1]
    page.goto(f"{live_server.url}/tasks/{task}")
    viewer = page.locator("dialog[data-viewer]")
    expect(viewer).to_be_hidden()
    first = page.locator(f"#image-{images[0]} a.thumb")
    first.focus()
    page.keyboard.press("Enter")
    expect(viewer).to_be_visible()
    expect(viewer.locator("[data-viewer-count]")).to_have_text("1 of 3")
    expect(viewer.locator("[data-viewer-seed]")).to_have_text("1003")
    page.keyboard.press("ArrowRight")
    expect(viewer.locator("[data-viewer-count]")).to_have_text("2 of 3")
    expect(viewer.locator("[data-viewer-seed]")).to_have_text("1004")
    assert viewer.locator("[data-viewer-img]").get_attribute("src").startswith("/files/")
    assert viewer.locator("[data-viewer-download]").get_attribute("href") == \
        f"/download/{images[1]}"
    page.keyboard.press("ArrowLeft")
    expect(viewer.locator("[data-viewer-count]")).to_have_text("1 of 3")
    expect(viewer.locator("[data-viewer-prev]")).to_be_disabled()

    # 100 %: the picture at its own size (256 px wide here), then fit again.
    img = viewer.locator("[data-viewer-img]")
    expect(img).to_have_js_property("complete", True)
    fitted = img.bounding_box()["width"]
    page.keyboard.press("z")
    expect(viewer).to_have_class(re.compile("zoomed"))
    expect(viewer.locator("[data-viewer-zoom]")).to_have_attribute("aria-pressed", "true")
    assert img.bounding_box()["width"] == 256 != fitted
    viewer.locator("[data-viewer-zoom]").click()
    expect(viewer).not_to_have_class(re.compile("zoomed"))
    shoot(page, "viewer-task")

    # Copy the seed and the prompt: the clipboard holds them.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    viewer.locator("[data-viewer-copy=seed]").click()
    expect(viewer.locator("[data-viewer-status]")).to_have_text("Copied the seed")
    assert page.evaluate("navigator.clipboard.readText()") == "1003"
    viewer.locator("[data-viewer-copy=prompt]").click()
    expect(viewer.locator("[data-viewer-status]")).to_have_text("Copied the prompt")
    assert page.evaluate("navigator.clipboard.readText()") == TASKS[-1][0]

    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    assert focused(page, f"#image-{images[0]} a.thumb")
    assert not [e for e in page.console_errors if "404" not in e], page.console_errors


def test_the_viewer_reruns_its_image_with_its_seed(live_server, filled, page):
    task, images = filled[-1]
    page.goto(f"{live_server.url}/tasks/{task}")
    page.locator(f"#image-{images[1]} a.thumb").click()
    page.locator("dialog[data-viewer] [data-viewer-rerun] button").click()
    page.wait_for_url(re.compile(r"/tasks/[0-9a-f-]{36}$"))
    child = re.search(r"/tasks/([0-9a-f-]{36})$", page.url)[1]
    assert child != task
    sent = requests.get(f"{live_server.url}/api/tasks/{child}", timeout=5).json()
    assert (sent["params"]["seed"], sent["params"]["numberResults"]) == (1004, 1)
    assert sent["parentTaskUUID"] == task


def test_the_viewer_walks_the_gallery_page_and_swipes(live_server, filled, page):
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/")
    cards = page.locator("[data-gallery] [data-view-src]")
    expect(cards).to_have_count(6)
    cards.nth(0).click()
    viewer = page.locator("dialog[data-viewer]")
    expect(viewer.locator("[data-viewer-count]")).to_have_text("1 of 6")
    for _ in range(3):  # past the batch of three, into the next task
        page.keyboard.press("ArrowRight")
    expect(viewer.locator("[data-viewer-count]")).to_have_text("4 of 6")
    expect(viewer.locator("[data-viewer-prompt]")).to_have_text(TASKS[2][0])
    expect(viewer.locator("[data-viewer-task]")).to_have_attribute(
        "href", re.compile(rf"/tasks/{filled[2][0]}#image-"))
    expect(viewer.locator("[data-viewer-img]")).to_have_js_property("complete", True)
    shoot(page, "viewer-gallery", docs=True)

    # A swipe to the left is the next image, to the right the previous one.
    box = viewer.locator("[data-viewer-stage]").bounding_box()
    y = box["y"] + box["height"] / 2
    for start, end, expected in ((0.7, 0.2, "5 of 6"), (0.2, 0.7, "4 of 6")):
        page.mouse.move(box["x"] + box["width"] * start, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * end, y, steps=5)
        page.mouse.up()
        expect(viewer.locator("[data-viewer-count]")).to_have_text(expected)
    page.keyboard.press("Escape")
    expect(viewer).to_be_hidden()
    assert focused(page, "[data-gallery] li:nth-child(4) [data-card]")

    # Enter on a card still opens the task, as a link does.
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"/tasks/{filled[2][0]}"))


def test_the_viewer_on_a_phone(live_server, filled, browser):
    page = open_page(browser, PHONE, has_touch=True)
    page.goto(f"{live_server.url}/tasks/{filled[0][0]}")
    page.locator("a.thumb").first.click()
    viewer = page.locator("dialog[data-viewer]")
    expect(viewer).to_be_visible()
    assert viewer.bounding_box()["width"] <= PHONE["width"]
    assert viewer.evaluate("d => d.scrollWidth <= d.clientWidth")
    shoot(page, "viewer-phone")
    page.context.close()


def test_without_javascript_the_links_open_the_file_and_the_task(browser, live_server,
                                                                filled):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    task, images = filled[0]
    page.goto(f"{live_server.url}/tasks/{task}")
    page.locator("a.thumb").first.click()
    page.wait_for_url(re.compile(r"/files/[0-9a-f]{64}\.jpg$"))
    page.goto(f"{live_server.url}/")
    page.locator("[data-card]").last.click()
    page.wait_for_url(re.compile(rf"/tasks/{task}#image-{images[0]}$"))
    context.close()


def ratio(locator):
    box = locator.bounding_box()
    return box["width"] / box["height"]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_thumbnails_keep_their_proportions(live_server, filled, browser, viewport):
    page = open_page(browser, viewport)
    page.goto(f"{live_server.url}/")
    thumbs = page.locator("[data-gallery] .thumb img")
    expect(thumbs).to_have_count(6)
    for n in range(6):
        expect(thumbs.nth(n)).to_have_js_property("complete", True)
    portrait = page.locator(f"#card-{filled[0][1][0]} .thumb")
    wide = page.locator(f"#card-{filled[1][1][0]} .thumb")
    assert ratio(portrait) == pytest.approx(768 / 1024, rel=0.02)
    assert ratio(wide) == pytest.approx(1024 / 576, rel=0.02)
    # The image fills its box, as wide as it is tall for its own picture (no crop to a square).
    img = page.locator(f"#card-{filled[0][1][0]} .thumb img")
    assert img.evaluate("i => i.naturalWidth / i.naturalHeight") == pytest.approx(0.75, rel=0.02)
    if viewport is PHONE:
        tops = [round(c.bounding_box()["y"]) for c in page.locator("[data-gallery] > li").all()]
        assert max(tops.count(top) for top in tops) == 2  # two cards a row
        assert page.locator("[data-gallery]").evaluate("g => g.scrollWidth <= g.clientWidth")
    shoot(page, f"gallery-{'phone' if viewport is PHONE else 'desktop'}", docs=True)
    page.context.close()


def test_paging_both_ways_and_the_sort(live_server, app, page, monkeypatch):
    from archive import browse
    monkeypatch.setattr(browse, "PAGE_SIZE", 4)
    made = fill(app, copies=2)  # 12 cards
    page.goto(f"{live_server.url}/")
    first = page.locator("[data-card]").evaluate_all("cs => cs.map(c => c.href)")
    page.click("text=Older ›")
    expect(page.locator("text=‹ Newer")).to_be_visible()
    second = page.locator("[data-card]").evaluate_all("cs => cs.map(c => c.href)")
    assert not set(first) & set(second)
    page.click("text=‹ Newer")
    assert page.locator("[data-card]").evaluate_all("cs => cs.map(c => c.href)") == first
    page.click("text=Oldest »")
    expect(page.locator("[data-card]").last).to_have_attribute(
        "href", re.compile(made[0][0]))
    page.select_option("select[name=sort]", "oldest")
    page.wait_for_url(re.compile(r"sort=oldest"))
    expect(page.locator("[data-card]").first).to_have_attribute("href", re.compile(made[0][0]))
    page.select_option("select[name=density]", "small")
    page.wait_for_url(re.compile(r"density=small"))
    expect(page.locator("[data-gallery]")).to_have_class(re.compile("density-small"))
    page.goto(f"{live_server.url}/")  # remembered
    expect(page.locator("[data-gallery]")).to_have_class(re.compile("density-small"))


def test_stars_without_a_reload_from_the_card_and_the_viewer(live_server, filled, page):
    page.goto(f"{live_server.url}/")
    page.evaluate("window.stillHere = 7")
    image = filled[2][1][0]
    star = page.locator(f"#card-{image} .star")
    star.click()
    expect(star).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("window.stillHere") == 7  # the same page: no reload
    catalogue = live_server.app.extensions["catalogue"]
    assert catalogue.conn.execute("SELECT starred FROM results WHERE image_uuid = ?",
                                  (image,)).fetchone()[0] == 1
    # From the viewer: the card follows.
    page.locator(f"#card-{image} [data-card]").click()
    viewer = page.locator("dialog[data-viewer]")
    expect(viewer.locator("[data-viewer-star]")).to_have_attribute("aria-pressed", "true")
    viewer.locator("[data-viewer-star]").click()
    expect(viewer.locator("[data-viewer-star]")).to_have_attribute("aria-pressed", "false")
    page.keyboard.press("Escape")
    expect(star).to_have_attribute("aria-pressed", "false")
    assert page.evaluate("window.stillHere") == 7


def test_picking_cards_and_what_is_done_to_them(live_server, filled, page, tmp_path):
    page.goto(f"{live_server.url}/")
    boxes = page.locator("[data-pick]")
    expect(boxes).to_have_count(6)
    boxes.nth(0).click()
    boxes.nth(3).click(modifiers=["Shift"])  # a range: the first four
    expect(page.locator("[data-bulk-count]")).to_have_text("4 picked")
    page.locator("[data-gallery] [data-card]").nth(5).focus()
    page.keyboard.press("x")  # the keyboard picks the focused card
    expect(boxes.nth(5)).to_be_checked()
    page.keyboard.press(" ")
    expect(boxes.nth(5)).not_to_be_checked()
    page.keyboard.press("x")
    expect(page.locator("[data-bulk-count]")).to_have_text("5 picked")
    shoot(page, "gallery-picked")

    # Star the five without a reload.
    page.evaluate("window.stillHere = 1")
    page.click("[data-bulk] button[value=star]")
    expect(page.locator("[data-gallery] .star[aria-pressed=true]")).to_have_count(5)
    assert page.evaluate("window.stillHere") == 1

    # The zip holds each picked image and its sidecar.
    with page.expect_download() as download:
        page.click("[data-bulk] button[value=zip]")
    path = tmp_path / "picked.zip"
    download.value.save_as(path)
    with zipfile.ZipFile(path) as z:
        assert len(z.namelist()) == 10 and sum(n.endswith(".json") for n in z.namelist()) == 5

    # Delete asks on a page with the thumbnails, then deletes.
    page.click("[data-bulk] button[value=delete]")
    expect(page.locator("h1")).to_have_text("Delete 5 images?")
    expect(page.locator("[data-delete-list] img")).to_have_count(5)
    for n in range(5):
        expect(page.locator("[data-delete-list] img").nth(n)).to_have_js_property("complete", True)
    shoot(page, "delete-picked")
    page.click("text=Delete for good")
    page.wait_for_url(f"{live_server.url}/")
    expect(page.locator("[data-gallery] [data-card]")).to_have_count(1)
    assert "Deleted 5 image(s)" in page.inner_text(".notice")


def test_all_on_the_page_home_end_and_focus_back_after_a_task(live_server, filled, page):
    page.goto(f"{live_server.url}/")
    page.check("[data-bulk-all]")
    expect(page.locator("[data-pick]:checked")).to_have_count(6)
    page.uncheck("[data-bulk-all]")
    page.locator("[data-gallery] [data-card]").nth(2).focus()
    page.keyboard.press("End")
    assert focused(page, "[data-gallery] li:last-child [data-card]")
    page.keyboard.press("Home")
    assert focused(page, "[data-gallery] li:first-child [data-card]")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/tasks/"))
    page.go_back()
    page.wait_for_url(f"{live_server.url}/")
    expect(page.locator("[data-gallery] li:nth-child(3) [data-card]")).to_be_focused()
