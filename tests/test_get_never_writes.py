"""A page view never writes: with the budgets past their warning and their limit and their
crossings not yet recorded, every page renders the warning from a read and leaves the
catalogue as it was, and no alert is sent. Crossings are recorded where the costs change
(tests/test_budgets.py), so whether an alert comes never depends on someone looking."""

import sqlite3

import pytest

from archive.catalogue import utcnow
from tests.costs_helpers import add_result, add_task
from tests.fakes import FakeProvider

PAGES = ("/", "/costs", "/deliveries", "/new", "/tasks/{task}", "/tasks/{task}/delete",
         "/api/costs", "/api/tasks")


@pytest.fixture
def remote():
    fake = FakeProvider()
    yield fake
    fake.close()


@pytest.fixture
def app_config(app_config, remote):
    # spent 0.0013 + 0.0006 in flight: 127% of the day's limit, 86% of the month's
    return dict(app_config, RUNWARE_ARCHIVE_ALERT_URL=remote.alert_url,
                RUNWARE_ARCHIVE_BUDGET_DAILY=0.0015, RUNWARE_ARCHIVE_BUDGET_MONTHLY=0.0022)


@pytest.fixture
def task(app):
    catalogue = app.extensions["catalogue"]
    done = add_task(catalogue, estimate=0.0013)
    add_result(catalogue, done, utcnow(), 0.0013)
    add_task(catalogue, estimate=0.0006, status="submitted")
    return done


def rows(conn):
    """Every row of every table (and the schema), as SQL text."""
    return list(conn.iterdump())


def test_no_page_writes_nor_alerts(app, client, remote, data_dir, task):
    # A connection of the test's own: its data_version moves on any commit by another
    # connection, the app's from whatever thread; the rows say what such a commit changed.
    conn = sqlite3.connect(data_dir / "catalogue.db")
    version, before = conn.execute("PRAGMA data_version").fetchone()[0], rows(conn)
    seen = ""
    for page in PAGES:
        response = client.get(page.format(task=task))
        assert response.status_code == 200, (page, response.status_code)
        seen += response.get_data(as_text=True)
    assert remote.wait_for_alerts(1, timeout=0.5) == []  # alert threads would have written
    try:
        assert rows(conn) == before
        assert conn.execute("PRAGMA data_version").fetchone()[0] == version, "a GET committed"
    finally:
        conn.close()
    assert "The daily budget is used up" in seen and "86% of the monthly budget" in seen


def test_costs_with_a_crossing_pending_records_and_sends_nothing(app, client, remote, task):
    catalogue = app.extensions["catalogue"]
    assert client.get("/costs").status_code == 200
    assert remote.wait_for_alerts(1, timeout=0.5) == []
    assert catalogue.conn.execute("SELECT count(*) FROM budget_crossings").fetchone()[0] == 0
