"""The costs page's books section in Chromium at 1366 and 390 px: a day with a task whose
webhooks were all dropped shows its difference and names the task (a link to its page), the
table scrolls inside its own box on a phone, axe-core finds nothing serious, and the button
runs a pass with the page's CSRF token."""

import pytest
import requests

from tests.browser_support import DESKTOP, PHONE, axe_violations, open_page, overflow, shoot
from tests.test_books import PRICE, generated, submit, complete

pytestmark = pytest.mark.browser


@pytest.fixture
def app_config(app_config):
    return {**app_config, "RUNWARE_SANDBOX_RESULT_DELAY": 0.01, "RUNWARE_ARCHIVE_FETCHER": "off",
            "RUNWARE_SANDBOX_RETRY_BASE": 0.01, "RUNWARE_SANDBOX_RETRY_CAP": 0.02}


@pytest.fixture
def day_with_a_lost_task(app, live_server):
    catalogue = app.extensions["catalogue"]
    complete(catalogue, submit(app, n=2))
    lost = submit(app, n=1, faults="drop=1")
    generated(app, lost)
    return lost


@pytest.mark.parametrize("viewport, name", [(DESKTOP, "books-desktop"), (PHONE, "books-phone")])
def test_the_section_names_the_task_and_fits(browser, live_server, app, day_with_a_lost_task,
                                             viewport, name):
    from playwright.sync_api import expect
    page = open_page(browser, viewport, bypass_csp=True)
    page.goto(live_server.url + "/costs")
    section = page.locator("#books")
    expect(section).to_contain_text("Not checked yet")
    section.get_by_role("button", name="Check with Runware now").click()
    expect(page).to_have_url(live_server.url + "/costs#books")
    table = section.locator("table.books-days")
    expect(table.locator("caption")).to_contain_text("Per day")
    assert table.locator("thead th[scope=col]").count() == 6
    row = table.locator("tbody tr").first
    expect(row.locator("th[scope=row]")).to_have_count(1)
    expect(row).to_contain_text(f"${PRICE:.4f}")  # the difference: the lost task's cost
    link = row.get_by_role("link", name=day_with_a_lost_task[:8])
    expect(link).to_have_attribute("href", f"/tasks/{day_with_a_lost_task}")
    expect(section).to_contain_text("Days left")
    assert page.locator(".table-scroll > table.books-days").count() == 1
    section.scroll_into_view_if_needed()
    shoot(page, name)
    assert overflow(page)["over"] == 0, overflow(page)
    assert axe_violations(page) == []
    assert page.console_errors == []
    page.context.close()


def test_the_button_needs_the_csrf_token(app, live_server):
    reply = requests.post(live_server.url + "/costs/books", timeout=10,
                          allow_redirects=False)
    assert reply.status_code == 400
    assert app.extensions["catalogue"].conn.execute(
        "SELECT count(*) FROM books_account").fetchone()[0] == 0
