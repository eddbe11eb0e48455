"""The /costs dashboard, GET /api/costs (JSON and CSV) and ``runware-archive stats``."""

import csv
import io
import re

import pytest
from click.testing import CliRunner

from archive import budget_store
from archive.catalogue import utcnow
from receiver import config as settings
from receiver.cli import main
from tests.costs_helpers import add_result, add_task, at


@pytest.fixture
def catalogue(app):
    return app.extensions["catalogue"]


@pytest.fixture
def filled(catalogue):
    """Two results today, one in 2024, one without cost, a re-run with a keeper."""
    root = add_task(catalogue, label="client-a", width=1024, height=768, estimate=0.0012,
                    number_results=2, prompt="a glasshouse tea train platform")
    rerun = add_task(catalogue, label="<b>client-b</b>", parent=root, estimate=0.0006,
                     prompt="a copper aviary market")
    add_result(catalogue, root, utcnow(), 0.0013)
    add_result(catalogue, root, utcnow(), None)
    add_result(catalogue, rerun, utcnow(), 0.0006, starred=1)
    old = add_task(catalogue, provider="sandbox", prompt="an old harbor")
    add_result(catalogue, old, at("2024-05-01 10:00"), 0.0032)
    return root, rerun


def text_of(html):
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_the_dashboard_renders_an_empty_catalogue(client):
    response = client.get("/costs")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<svg" in html and html.count("<rect") == 30
    assert "$0.0000" in html and "No results yet." in html and "No budget set" in html
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)  # no inline script (CSP)
    assert not re.search(r"\son\w+=", html) and "style=" not in html
    assert 'href="/api/costs?format=csv"' in html
    assert 'href="/costs"' in html  # the navigation of base.html


def test_the_dashboard_shows_the_figures(client, filled):
    html = client.get("/costs").get_data(as_text=True)
    text = text_of(html)
    assert "Today $0.0019 3 results 1 without cost (≈ $0.0006)" in text
    assert "All time $0.0051 4 results" in text
    assert "client-a $0.0013" in text and "1024x768" in text
    assert "&lt;b&gt;client-b&lt;/b&gt;" in html and "<b>client-b" not in html
    assert "a glasshouse tea train platform" in text
    assert f"{filled[0][:8]}" in html and "$0.0019" in text  # the family, one keeper
    ranged = text_of(client.get("/costs?from=2024-05-01&to=2024-05-31").get_data(as_text=True))
    assert "2024-05-01 to 2024-05-31: $0.0032 over 1 results" in ranged
    assert "All time $0.0051 4 results" in ranged and "(none) $0.0032" in ranged
    bars = re.findall(r'<rect x="[^"]+" y="[^"]+" width="[^"]+" height="([^"]+)"', html)
    assert len(bars) == 30 and float(bars[-1]) > 0 and sum(map(float, bars[:-1])) == 0


def test_the_dashboard_warns_at_80_percent(app, client, filled):
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily=0.0030)  # spent 0.0019 + 0.0006 estimated
    text = text_of(client.get("/costs").get_data(as_text=True))
    assert "83% of the daily budget is used" in text
    assert "$0.0025 spent or in flight of $0.0030" in text
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily=0.0025)
    assert "The daily budget is used up" in text_of(client.get("/costs").get_data(as_text=True))
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily=1.0)
    assert "budget is used" not in text_of(client.get("/costs").get_data(as_text=True))


def test_the_dashboard_refuses_a_bad_range(client):
    response = client.get("/costs?from=yesterday")
    assert response.status_code == 400
    assert "from: from must be a date as YYYY-MM-DD" in text_of(response.get_data(as_text=True))


def test_the_api_groups_and_filters(client, filled):
    body = client.get("/api/costs?group=label").get_json()
    assert body["total"] == 0.0051 and body["resultsWithoutCost"] == 1
    assert {g["key"]: g["cost"] for g in body["groups"]} == {
        None: 0.0032, "client-a": 0.0013, "<b>client-b</b>": 0.0006}
    ranged = client.get("/api/costs?from=2024-05-01&to=2024-05-31&group=provider").get_json()
    assert (ranged["total"], ranged["groups"][0]["key"]) == (0.0032, "sandbox")
    assert ranged["timezone"] == "UTC" and ranged["from"] == "2024-05-01"


@pytest.mark.parametrize("query,parameter", [
    ("from=2024-13-01", "from"), ("to=yesterday", "to"), ("group=hour", "group"),
    ("format=xml", "format"), ("from=2024-05-02&to=2024-05-01", "to"),
])
def test_the_api_refuses_bad_queries(client, query, parameter):
    response = client.get(f"/api/costs?{query}")
    assert response.status_code == 400
    assert parameter in [e["parameter"] for e in response.get_json()["errors"]]


def test_the_api_csv_is_the_ledger(app, client, filled):
    app.config["RUNWARE_ARCHIVE_TIMEZONE"] = "America/New_York"
    response = client.get("/api/costs?format=csv&from=2024-05-01&to=2024-05-01")
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    row, = csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff")))
    assert (row["time"], row["utc_offset"], row["cost"]) == (
        "2024-05-01 06:00:00", "UTC-04:00", "0.0032")
    rows = list(csv.DictReader(io.StringIO(
        client.get("/api/costs?format=csv").get_data(as_text=True).lstrip("\ufeff"))))
    total = client.get("/api/costs").get_json()["total"]
    assert len(rows) == 4 and sum(float(r["cost"] or 0) for r in rows) == pytest.approx(total)


def test_an_unknown_time_zone_stops_the_app(app_config, monkeypatch):
    from receiver import create_app

    monkeypatch.delenv("RUNWARE_ARCHIVE_TIMEZONE", raising=False)
    with pytest.raises(SystemExit, match="unknown time zone 'Mars/Olympus'"):
        create_app(dict(app_config, RUNWARE_ARCHIVE_TIMEZONE="Mars/Olympus"))


@pytest.fixture
def cli_env(app, data_dir, monkeypatch):
    for key in settings.DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RUNWARE_ARCHIVE_DIR", str(data_dir))


def test_stats_prints_the_table(cli_env, filled, monkeypatch):
    result = CliRunner().invoke(main, ["stats", "--group", "label"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == ("Costs from the start to now, by label"
                        " (UTC, USD as returned by the provider)")
    assert re.search(r"^\(none\)\s+\$0\.0032\s+1$", result.output, re.M)
    assert re.search(r"^client-a\s+\$0\.0013\s+2\s+1$", result.output, re.M)
    assert re.search(r"^total\s+\$0\.0051\s+4\s+1$", result.output, re.M)
    assert "1 result(s) came without a cost; not counted above (estimated $0.0006)" in lines


def test_stats_by_month_in_a_zone_with_a_budget(cli_env, filled, monkeypatch):
    monkeypatch.setenv("RUNWARE_ARCHIVE_TIMEZONE", "Europe/Berlin")
    monkeypatch.setenv("RUNWARE_ARCHIVE_BUDGET_MONTHLY", "0.003")
    result = CliRunner().invoke(main, ["stats", "--group", "month", "--from", "2024-01-01",
                                       "--to", "2024-12-31"])
    assert result.exit_code == 0, result.output
    assert re.search(r"^2024-05\s+\$0\.0032\s+1$", result.output, re.M)
    assert re.search(r"^monthly budget \d{4}-\d{2}: \$0\.0025 spent or in flight of "
                     r"\$0\.0030 \(83%\)  WARNING$", result.output, re.M)


def test_stats_refuses_a_bad_date(cli_env):
    result = CliRunner().invoke(main, ["stats", "--from", "May 1st"])
    assert result.exit_code == 2 and "--from must be a date as YYYY-MM-DD" in result.output


def test_a_busy_catalogue_does_not_break_the_warning(app_config, data_dir, monkeypatch):
    import sqlite3

    from receiver import create_app

    for key in settings.DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    app = create_app(dict(app_config, RUNWARE_ARCHIVE_BUSY_TIMEOUT_MS=50,
                          RUNWARE_ARCHIVE_BUDGET_DAILY=0.001))
    add_result(app.extensions["catalogue"], add_task(app.extensions["catalogue"]), utcnow(),
               0.0009)
    other = sqlite3.connect(data_dir / "catalogue.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        response = app.test_client().get("/costs")
    finally:
        other.execute("ROLLBACK")
    assert response.status_code == 200
    assert "90% of the daily budget is used" in text_of(response.get_data(as_text=True))
    assert app.extensions["catalogue"].conn.execute(
        "SELECT count(*) FROM budget_crossings").fetchone()[0] == 0  # a page only reads


def test_task_pages_warn_at_80_percent_too(app, client, filled):
    task_uuid = app.extensions["catalogue"].list_tasks(limit=1)[0]["task_uuid"]
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily=0.0030)
    page = text_of(client.get(f"/tasks/{task_uuid}").get_data(as_text=True))
    assert "83% of the daily budget is used" in page
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily=1.0)
    page = text_of(client.get(f"/tasks/{task_uuid}").get_data(as_text=True))
    assert "budget is used" not in page


def test_the_costliest_tasks_and_families_link_to_the_task_pages(client, filled):
    html = client.get("/costs").get_data(as_text=True)
    root, rerun = filled
    top = html[html.index("Most expensive tasks"):html.index("Re-run families")]
    families = html[html.index("Re-run families"):]
    assert f'href="/tasks/{root}"' in top and f'href="/tasks/{rerun}"' in top
    assert f'href="/tasks/{root}"' in families
    assert "/api/tasks/" not in top + families
    assert client.get(f"/tasks/{root}").status_code == 200
