"""Browser fixtures every ``test_browser*.py`` file shares: Playwright driving Debian's
Chromium, a desktop and a phone page, screenshots, and axe-core for the accessibility pass.

Loaded for all tests through ``pytest_plugins`` in ``tests/conftest.py``. A missing
Playwright, Chromium or axe-core skips the test, unless ``RUNWARE_ARCHIVE_REQUIRE_BROWSER=1``
(CI sets it), where it is a failure. axe-core comes from npm (``package.json`` beside
``setup.cfg``; ``.ci/run`` installs it with ``npm ci``) and is injected into the page by the
test, never served by the app.
"""

import json
import os
from pathlib import Path

import pytest
from PIL import Image

try:  # Waiting goes through expect(): wait_for_function's eval is refused by our CSP.
    from playwright import sync_api
except ImportError:
    sync_api = None

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "tests" / "screenshots"
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1366, "height": 860}
PHONE = {"width": 390, "height": 844}


def _missing(reason):
    """Skip, or fail where the browser tests are required (CI)."""
    if os.environ.get("RUNWARE_ARCHIVE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required here, but {reason}")
    pytest.skip(reason)


def playwright_or_skip():
    """Playwright's sync API, or a skip (a failure where the browser is required)."""
    if sync_api is None:
        _missing("playwright is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        _missing(f"no Chromium at {CHROMIUM}")
    return sync_api.sync_playwright


@pytest.fixture
def browser():
    sync_playwright = playwright_or_skip()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def open_page(browser, viewport, **options):
    """A page in a fresh context that records console errors (CSP refusals among them)."""
    context = browser.new_context(viewport=viewport, device_scale_factor=1,
                                  color_scheme="light", **options)
    page = context.new_page()
    page.set_default_timeout(30000)
    page.console_errors = []
    page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
    return page


@pytest.fixture
def page(browser):
    """A desktop-width page."""
    page = open_page(browser, {"width": 1360, "height": 860})
    yield page
    page.context.close()


@pytest.fixture
def phone_page(browser):
    """A 390 px phone page, with touch."""
    page = open_page(browser, PHONE, has_touch=True, is_mobile=True)
    yield page
    page.context.close()


def wait_for(predicate, page, timeout=30.0):
    """Poll ``predicate`` (a check outside the page, such as the JSON API) every 100 ms
    of the page's own clock, failing after ``timeout`` seconds."""
    for _ in range(int(timeout * 10)):
        if predicate():
            return
        page.wait_for_timeout(100)
    assert predicate()


def shoot(page, name, *, docs=False, full_page=False):
    """A screenshot in tests/screenshots/ (and, with RUNWARE_ARCHIVE_DOCS_SCREENSHOTS=1,
    a 256-colour copy in docs/ for the README)."""
    SHOTS.mkdir(exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    if docs and os.environ.get("RUNWARE_ARCHIVE_DOCS_SCREENSHOTS") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        with Image.open(path) as shot:
            shot.convert("RGB").quantize(256).save(ROOT / "docs" / f"{name}.png", optimize=True)


def overflow(page):
    """How many CSS pixels the page is wider than its viewport (0 when it fits), and the
    widest elements that stick out, to name the culprit in a failure."""
    return page.evaluate("""() => {
        const width = document.documentElement.clientWidth;
        const over = document.documentElement.scrollWidth - width;
        const culprits = [];
        for (const el of document.querySelectorAll('body *')) {
            const box = el.getBoundingClientRect();
            if (box.right > width + 1 && getComputedStyle(el).position !== 'fixed'
                && !el.closest('.table-scroll, dialog:not([open])')) {
                culprits.push(`${el.tagName.toLowerCase()}.${el.className}`
                              + ` right=${Math.round(box.right)}`);
            }
        }
        return {over: Math.max(0, over), culprits: culprits.slice(0, 5)};
    }""")


def axe_violations(page, impacts=("serious", "critical")):
    """axe-core's violations of the page at these impacts, as short readable lines.

    The page must come from a context made with ``bypass_csp=True``: the app's CSP rightly
    refuses the injected script."""
    if not AXE.exists():
        _missing(f"axe-core is not installed ({AXE}; run `npm ci` beside setup.cfg)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => JSON.stringify((await axe.run(document, "
                           "{resultTypes: ['violations']})).violations)")
    return [f"{v['impact']}: {v['id']}: {v['help']} — "
            + "; ".join(n["target"][0] if isinstance(n["target"][0], str)
                        else json.dumps(n["target"]) for n in v["nodes"][:4])
            for v in json.loads(result) if v["impact"] in impacts]
