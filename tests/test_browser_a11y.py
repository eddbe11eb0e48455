"""Every page at a 390 px phone width and at 1366 px: nothing wider than the screen, and no
serious or critical accessibility violation as axe-core (from npm) judges it.

The pages are visited on a catalogue holding real archived results, a failed image and a
delivery, so what is checked is what a user sees, not an empty shell. One test per width
visits every page and reports every failure at once, naming the element that sticks out
or the axe rule broken and where.
"""

import re

import pytest
import requests

try:
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails, where required)
    expect = None

from tests.browser_support import DESKTOP, PHONE, axe_violations, open_page, overflow, shoot

pytestmark = pytest.mark.browser

PROMPTS = [("a glasshouse tea train platform at dawn, misty", 512, 384, 2),
           ("tidal library atrium interior, golden hour", 384, 512, 1),
           ("lantern bazaar on an ice harbor at dusk " * 6, 512, 288, 3)]


README_SHOTS = ("phone-task", "phone-costs", "phone-new")


@pytest.fixture
def app_config(app_config):
    """Some images of the three-image task fail (a seeded sandbox fault), for placeholders."""
    return dict(app_config, RUNWARE_SANDBOX_FAULTS="fail=0.5,seed=7",
                RUNWARE_ARCHIVE_FETCHER="off")


def fill(url):
    """Tasks through the JSON API, waited for until every image is archived."""
    uuids = []
    for prompt, width, height, n in PROMPTS:
        reply = requests.post(f"{url}/api/tasks", timeout=30, json={
            "positivePrompt": prompt, "negativePrompt": "blurry", "width": width,
            "height": height, "numberResults": n, "steps": 4})
        assert reply.status_code == 202, reply.text
        uuids.append(reply.json()["taskUUID"])
    return uuids


def settled(url, uuids):
    """Every task has heard of all its images, and every stored one is archived."""
    for uuid in uuids:
        task = requests.get(f"{url}/api/tasks/{uuid}", timeout=5).json()
        heard = task["resultsReceived"] + task.get("imagesFailed", 0)
        if heard < task["numberResults"] or not all(r["archived"] for r in task["results"]):
            return False
    return True


def pages_of(url, uuids):
    """The pages a user reaches, by name (the name is also the screenshot's)."""
    deliveries = requests.get(f"{url}/deliveries", timeout=5).text
    delivery = re.search(r'href="(/deliveries/\d+)"', deliveries)
    pages = {"gallery": "/", "gallery-search": "/?q=tidal", "task": f"/tasks/{uuids[0]}",
             "task-failures": f"/tasks/{uuids[2]}", "new": "/new",
             "rerun-form": f"/new?from={uuids[1]}", "costs": "/costs",
             "deliveries": "/deliveries", "keys": "/keys",
             "delete": f"/tasks/{uuids[0]}/delete", "not-found": "/tasks/nope",
             "gallery-dense": "/?density=small&sort=oldest", "read": "/read"}
    if delivery:
        pages["delivery"] = delivery[1]
    return pages


@pytest.fixture
def visited(live_server, fetcher):
    """The live server's URL and its pages, once the catalogue has settled."""
    url = live_server.url
    uuids = fill(url)
    for _ in range(300):
        if settled(url, uuids):
            break
        __import__("time").sleep(0.1)
    assert settled(url, uuids)
    return url, pages_of(url, uuids)


@pytest.mark.parametrize("width", ["phone", "desktop"])
def test_every_page_fits_and_passes_axe(browser, visited, width):
    url, pages = visited
    viewport = PHONE if width == "phone" else DESKTOP
    page = open_page(browser, viewport, bypass_csp=True, has_touch=width == "phone")
    problems = []
    for name, path in pages.items():
        page.goto(url + path)
        if width == "phone":
            fit = overflow(page)
            if fit["over"]:
                problems.append(f"{path}: {fit['over']} px wider than the phone: {fit['culprits']}")
        problems += [f"{path}: {line}" for line in axe_violations(page)]
        shoot(page, f"{width}-{name}", full_page=width == "phone")
        if f"{width}-{name}" in README_SHOTS:  # the first screen, for the README
            shoot(page, f"{width}-{name}", docs=True)
    for name, reach in STATES.items():
        reach(page, url)
        problems += [f"{name}: {line}" for line in axe_violations(page)]
        shoot(page, f"{width}-{name}")
    page.context.close()
    assert not problems, "\n".join(problems)


def open_the_viewer(page, url):
    """The gallery with the viewer open on its first image (the dialog is modal: axe
    checks what it holds, and that it is named)."""
    page.goto(url + "/")
    page.locator("[data-card]:has(img)").first.focus()
    page.keyboard.press("v")
    expect(page.locator("dialog[open]")).to_have_count(1)


def confirm_a_bulk_delete(page, url):
    """The page that asks before deleting the picked images, thumbnails and all."""
    page.goto(url + "/")
    for box in page.locator("[data-pick]").all()[:2]:
        box.check()
    page.click("button[value=delete]")
    expect(page.locator("form[action='/results/delete'], .confirm")).not_to_have_count(0)


def read_a_download(page, url):
    """/read after dropping one of the archive's own downloads: the parameters it found."""
    tasks = requests.get(f"{url}/api/tasks", timeout=5).json()["tasks"]
    results = [r for t in tasks
               for r in requests.get(f"{url}/api/tasks/{t['taskUUID']}", timeout=5).json()["results"]
               if r["archived"]]
    download = f"/download/{results[0]['imageUUID']}"
    body = requests.get(url + download, timeout=10)
    page.goto(url + "/read")
    page.set_input_files("#read-file", files=[{
        "name": "download.jpg", "mimeType": body.headers["Content-Type"],
        "buffer": body.content}])
    page.click(".read-form button[type=submit]")
    expect(page.locator("[data-open-form]")).to_have_count(1)


STATES = {"viewer": open_the_viewer, "bulk-delete": confirm_a_bulk_delete,
          "read-result": read_a_download}
