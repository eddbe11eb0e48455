"""archive.costs on real SQLite files: exact sums per group, time-zone and DST boundaries,
month and ISO-week edges, results without a cost, the CSV ledger, families, the rollup."""

import csv
import io
import random
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from archive import costs, migrations
from archive.catalogue import Catalogue
from tests.costs_helpers import add_result, add_task, at

UTC, BERLIN = ZoneInfo("UTC"), ZoneInfo("Europe/Berlin")


@pytest.fixture
def catalogue(tmp_path, migrated_copy):
    cat = Catalogue(migrated_copy(tmp_path / "catalogue.db"))
    cat.migrate()  # up to date already: a copy of the session's migrated catalogue
    return cat


def keyed(rows):
    return {r["key"]: (r["cost"], r["results"], r["resultsWithoutCost"]) for r in rows}


def group(catalogue, name, tz=UTC, first=None, last=None):
    return keyed(costs.report(catalogue.conn, tz, first=first, last=last, group=name)["groups"])


@pytest.fixture
def mixed(catalogue):
    """Known costs over models, sizes, labels and providers."""
    a = add_task(catalogue, label="client-a", width=1024, height=768, number_results=3,
                 estimate=0.0018)
    b = add_task(catalogue, label="client-b", model="runware:z-image@turbo", width=512,
                 height=512, provider="sandbox")
    c = add_task(catalogue, width=1024, height=768, estimate=0.0006)
    add_result(catalogue, a, at("2024-05-01 10:00"), 0.0006)
    add_result(catalogue, a, at("2024-05-01 10:01"), 0.0013)
    add_result(catalogue, a, at("2024-05-02 09:00"), None)
    add_result(catalogue, b, at("2024-05-02 11:00"), 0.0032)
    add_result(catalogue, c, at("2024-05-03 12:00"), 0.0006)
    return a, b, c


def test_totals_and_every_dimension_are_exact(catalogue, mixed):
    report = costs.report(catalogue.conn, UTC, group="model")
    assert report["total"] == pytest.approx(0.0057, abs=1e-12)
    assert (report["results"], report["resultsWithoutCost"]) == (5, 1)
    assert report["estimateWithoutCost"] == pytest.approx(0.0006)
    assert keyed(report["groups"]) == {
        "runware:z-image@turbo": (0.0032, 1, 0),
        "runware:twinflow-z-image-turbo@0": (0.0025, 4, 1),
    }
    assert list(keyed(report["groups"])) == ["runware:z-image@turbo",
                                             "runware:twinflow-z-image-turbo@0"]
    assert group(catalogue, "size") == {"512x512": (0.0032, 1, 0), "1024x768": (0.0025, 4, 1)}
    assert group(catalogue, "label") == {"client-b": (0.0032, 1, 0),
                                         "client-a": (0.0019, 3, 1), None: (0.0006, 1, 0)}
    assert group(catalogue, "provider") == {"sandbox": (0.0032, 1, 0),
                                            "runware": (0.0025, 4, 1)}
    assert group(catalogue, "day") == {"2024-05-01": (0.0019, 2, 0),
                                       "2024-05-02": (0.0032, 2, 1),
                                       "2024-05-03": (0.0006, 1, 0)}


def test_a_range_counts_only_its_days(catalogue, mixed):
    report = costs.report(catalogue.conn, UTC, first=date(2024, 5, 2), last=date(2024, 5, 2))
    assert (report["total"], report["results"], report["resultsWithoutCost"]) == (0.0032, 2, 1)
    assert (report["from"], report["to"]) == ("2024-05-02", "2024-05-02")
    assert costs.report(catalogue.conn, UTC, first=date(2024, 5, 4))["total"] == 0


def test_a_result_without_cost_is_flagged_not_zero(catalogue):
    task = add_task(catalogue, estimate=0.0026, number_results=2)
    add_result(catalogue, task, at("2024-05-01 10:00"), None)
    add_result(catalogue, task, at("2024-05-01 10:05"), None)
    report = costs.report(catalogue.conn, UTC)
    assert (report["total"], report["results"], report["resultsWithoutCost"]) == (0, 2, 2)
    assert report["estimateWithoutCost"] == pytest.approx(0.0026)
    assert report["groups"] == [{"key": "2024-05-01", "cost": 0, "results": 2,
                                 "resultsWithoutCost": 2, "estimateWithoutCost": 0.0026}]


def test_2330_utc_is_the_next_day_in_berlin(catalogue):
    task = add_task(catalogue)
    add_result(catalogue, task, at("2024-06-10 23:30"), 0.0006)
    assert group(catalogue, "day") == {"2024-06-10": (0.0006, 1, 0)}
    assert group(catalogue, "day", BERLIN) == {"2024-06-11": (0.0006, 1, 0)}
    one_day = dict(first=date(2024, 6, 10), last=date(2024, 6, 10))
    assert costs.report(catalogue.conn, UTC, **one_day)["total"] == 0.0006
    assert costs.report(catalogue.conn, BERLIN, **one_day)["total"] == 0


@pytest.mark.parametrize("moments,expected", [
    # Spring forward, 2024-03-31 02:00 CET -> 03:00 CEST: the day runs 23:00Z … 22:00Z.
    (["2024-03-30 22:59:59.999999", "2024-03-30 23:00", "2024-03-31 00:30",
      "2024-03-31 21:59:59.999999", "2024-03-31 22:00"],
     {"2024-03-30": 1, "2024-03-31": 3, "2024-04-01": 1}),
    # Fall back, 2024-10-27 03:00 CEST -> 02:00 CET: 25 hours, 22:00Z … 23:00Z.
    (["2024-10-26 21:59", "2024-10-26 22:00", "2024-10-27 00:30", "2024-10-27 01:30",
      "2024-10-27 22:59:59.999999", "2024-10-27 23:00"],
     {"2024-10-26": 1, "2024-10-27": 4, "2024-10-28": 1}),
])
def test_dst_change_days_in_berlin(catalogue, moments, expected):
    task = add_task(catalogue)
    for moment in moments:
        add_result(catalogue, task, at(moment), 0.0006)
    days = group(catalogue, "day", BERLIN)
    assert {k: v[1] for k, v in days.items()} == expected
    change_day = date.fromisoformat(max(expected, key=expected.get))
    report = costs.report(catalogue.conn, BERLIN, first=change_day, last=change_day)
    assert report["results"] == max(expected.values())


def test_quarter_hour_zones_fold_exactly(catalogue):
    task = add_task(catalogue)  # Kathmandu is UTC+05:45
    add_result(catalogue, task, at("2024-06-10 18:14:59.999999"), 0.0006)
    add_result(catalogue, task, at("2024-06-10 18:15"), 0.0013)
    assert group(catalogue, "day", ZoneInfo("Asia/Kathmandu")) == {
        "2024-06-10": (0.0006, 1, 0), "2024-06-11": (0.0013, 1, 0)}


def test_month_boundary_depends_on_the_zone(catalogue):
    task = add_task(catalogue)
    add_result(catalogue, task, at("2024-01-31 23:30"), 0.0006)
    add_result(catalogue, task, at("2024-02-29 23:30"), 0.0013)
    assert group(catalogue, "month") == {"2024-01": (0.0006, 1, 0), "2024-02": (0.0013, 1, 0)}
    assert group(catalogue, "month", BERLIN) == {"2024-02": (0.0006, 1, 0),
                                                 "2024-03": (0.0013, 1, 0)}


def test_iso_weeks_across_year_ends(catalogue):
    task = add_task(catalogue)
    for moment in ("2020-12-31 12:00", "2021-01-03 12:00", "2021-01-04 12:00",
                   "2024-12-29 12:00", "2024-12-30 12:00"):
        add_result(catalogue, task, at(moment), 0.0006)
    assert {k: v[1] for k, v in group(catalogue, "week").items()} == {
        "2020-W53": 2, "2021-W01": 1, "2024-W52": 1, "2025-W01": 1}


def test_the_rollup_agrees_with_the_rows(catalogue):
    rng = random.Random(6)
    tasks = [add_task(catalogue, label=rng.choice([None, "a", "b"]),
                      width=rng.choice([512, 1024]), estimate=0.0006) for _ in range(20)]
    for _ in range(300):
        moment = datetime.fromtimestamp(rng.uniform(1.70e9, 1.74e9), timezone.utc)
        add_result(catalogue, rng.choice(tasks), moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                   rng.choice([None, 0.0006, 0.0013, 0.0032]))
    tz = ZoneInfo("America/New_York")
    expected = {}
    for received_at, cost in catalogue.conn.execute("SELECT received_at, cost FROM results"):
        key = datetime.fromisoformat(received_at).astimezone(tz).strftime("%Y-%m")
        expected[key] = expected.get(key, 0) + (cost or 0)
    got = {k: v[0] for k, v in group(catalogue, "month", tz).items()}
    assert got == pytest.approx(expected)


def test_ingest_relabel_and_delete_keep_the_rollup_exact(catalogue):
    task = add_task(catalogue, label="old", number_results=2, status="submitted")
    items = [{"imageUUID": f"img-{i}", "seed": i, "cost": c, "imageURL": "https://x/y.jpg"}
             for i, c in ((1, 0.0006), (2, 0.0013))]
    catalogue.ingest(task, results=items)
    catalogue.ingest(task, results=items)  # a duplicate delivery changes nothing
    assert group(catalogue, "label") == {"old": (0.0019, 2, 0)}
    with catalogue.write() as conn:
        conn.execute("UPDATE tasks SET label = 'new' WHERE task_uuid = ?", (task,))
    assert group(catalogue, "label") == {"new": (0.0019, 2, 0)}
    with catalogue.write() as conn:
        conn.execute("DELETE FROM results WHERE image_uuid = 'img-2'")
    assert group(catalogue, "label") == {"new": (0.0006, 1, 0)}


def test_the_migrations_roll_up_what_was_stored_before_them(tmp_path, monkeypatch):
    cat = Catalogue(tmp_path / "old.db")
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
    cat.migrate()
    task = add_task(cat)
    rerun = add_task(cat, parent=task)
    add_task(cat, parent=rerun)
    add_result(cat, task, at("2024-05-01 10:00"), 0.0013)
    monkeypatch.undo()
    cat.migrate()
    assert group(cat, "day") == {"2024-05-01": (0.0013, 1, 0)}
    family, = costs.families(cat.conn)
    assert (family["root"], family["tasks"], family["cost"]) == (task, 3, 0.0013)


def test_most_expensive_tasks_and_families(catalogue):
    root = add_task(catalogue, created_at=at("2024-05-01 09:00"))
    rerun = add_task(catalogue, parent=root, created_at=at("2024-05-02 09:00"))
    rerun2 = add_task(catalogue, parent=rerun, created_at=at("2024-05-03 09:00"))
    single = add_task(catalogue, created_at=at("2024-05-04 09:00"))
    add_result(catalogue, root, at("2024-05-01 10:00"), 0.0006)
    add_result(catalogue, rerun, at("2024-05-02 10:00"), 0.0013, starred=1)
    add_result(catalogue, rerun2, at("2024-05-03 10:00"), 0.0006, starred=1)
    add_result(catalogue, rerun2, at("2024-05-03 10:00"), None)
    add_result(catalogue, single, at("2024-05-04 10:00"), 0.0032, starred=1)
    top = costs.top_tasks(catalogue.conn, limit=2)
    assert [t["task_uuid"] for t in top] == [single, rerun]
    start, end = costs.bounds(UTC, date(2024, 5, 1), date(2024, 5, 3))
    assert costs.top_tasks(catalogue.conn, start=start, end=end, limit=1)[0]["task_uuid"] == rerun
    family = {"root": root, "tasks": 3, "cost": 0.0025, "results": 4, "resultsWithoutCost": 1,
              "keepers": 2, "costPerKeeper": 0.00125}
    assert costs.families(catalogue.conn) == [family]
    assert costs.family(catalogue.conn, rerun2) == family
    assert costs.family(catalogue.conn, single)["costPerKeeper"] == 0.0032
    assert costs.family(catalogue.conn, "no-such-task") is None


def read_ledger(catalogue, tz, first=None, last=None):
    text = "".join(costs.ledger_csv(catalogue.conn, tz, *costs.bounds(tz, first, last),
                                    chunk=2))
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def test_the_csv_ledger_parses_and_sums_to_the_total(catalogue, mixed):
    rows = read_ledger(catalogue, BERLIN)
    assert list(rows[0]) == list(costs.LEDGER_COLUMNS)
    assert len(rows) == 5
    assert sum(float(r["cost"] or 0) for r in rows) == pytest.approx(
        costs.report(catalogue.conn, BERLIN)["total"])
    first = rows[0]
    assert (first["time"], first["utc_offset"]) == ("2024-05-01 12:00:00", "UTC+02:00")
    assert (first["size"], first["label"], first["estimate"]) == ("1024x768", "client-a",
                                                                   "0.0006")
    missing = [r for r in rows if r["cost_status"] == "missing"]
    assert len(missing) == 1 and missing[0]["cost"] == ""
    may = read_ledger(catalogue, BERLIN, date(2024, 5, 2), date(2024, 5, 2))
    assert len(may) == 2


def test_the_csv_ledger_defuses_formulas(catalogue):
    task = add_task(catalogue, prompt="=HYPERLINK(\"https://evil.example\",\"x\")",
                    label="@SUM(A1)")
    other = add_task(catalogue, prompt="-2+3 a harbor", label="+cmd")
    add_result(catalogue, task, at("2024-05-01 10:00"), 0.0006)
    add_result(catalogue, other, at("2024-05-01 10:00"), 0.0006)
    rows = read_ledger(catalogue, UTC)
    assert [r["prompt"] for r in rows] == ["'=HYPERLINK(\"https://evil.example\",\"x\")",
                                           "'-2+3 a harbor"]
    assert [r["label"] for r in rows] == ["'@SUM(A1)", "'+cmd"]
    assert costs.csv_safe("a normal prompt") == "a normal prompt"
    assert costs.csv_safe(0.0006) == 0.0006


@pytest.mark.parametrize("text", ["2024-5-1", "2024-W01", "20240501", "", None, "soon"])
def test_dates_must_be_yyyy_mm_dd(text):
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        costs.parse_day(text, "from")


def test_unknown_zones_are_refused():
    with pytest.raises(ValueError, match="unknown time zone"):
        costs.zone("Mars/Olympus")
    assert costs.zone(None).key == "UTC"
