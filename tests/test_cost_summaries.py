"""The summaries the dashboard and the gallery read instead of the rows (migrations m008-m010):
each equals a fold of the raw rows after inserts, stars, relabels, deletes, imports and on a
catalogue migrated with data in it; sums over time ranges and local days are exact."""

import random
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from archive import costs, curation, migrations, timeline
from archive.catalogue import Catalogue
from archive.exchange import export, import_archive
from archive.filestore import FileStore
from tests.costs_helpers import add_result, add_task, at

BUCKET = "CAST(strftime('%s', substr(r.received_at, 1, 19)) AS INTEGER) / 900 * 900"
SHARE = ("total(CASE WHEN r.cost IS NULL THEN coalesce(t.estimate / t.number_results, 0)"
         " ELSE 0 END)")
RAW = (f"SELECT {{key}}, total(r.cost), count(*), total(r.cost IS NULL), {SHARE}"
       " FROM results r JOIN tasks t ON t.task_uuid = r.task_uuid GROUP BY {key}")
DIMS = "t.model, coalesce(t.width || 'x' || t.height, ''), coalesce(t.label, ''), t.provider"
ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kathmandu", "Australia/Lord_Howe",
         "Pacific/Chatham", "Pacific/Kiritimati")


@pytest.fixture
def catalogue(tmp_path, migrated_copy):
    cat = Catalogue(migrated_copy(tmp_path / "catalogue.db"))
    cat.migrate()  # up to date already: a copy of the session's migrated catalogue
    return cat


def table(conn, sql, width):
    """``{key: sums}`` of a query whose last ``width`` columns are sums; rows that sum to
    nothing (left by deletes) are dropped, rounded so float noise does not count."""
    out = {}
    for row in conn.execute(sql):
        key, sums = row[:-width], tuple(round(v or 0, 9) for v in row[-width:])
        if any(sums):
            out[key if len(key) > 1 else key[0]] = sums
    return out


def assert_folded(conn):
    """Every summary table equals the same sums folded from tasks and results."""
    for kept, key in (("SELECT model, size, label, provider, cost, results, missing,"
                       " missing_estimate FROM cost_totals", DIMS),
                      ("SELECT bucket, cost, results, missing, missing_estimate"
                       " FROM cost_timeline", BUCKET),
                      ("SELECT day, model, size, label, provider, cost, results, missing,"
                       " missing_estimate FROM cost_days", f"{BUCKET} / 86400 * 86400, {DIMS}")):
        assert table(conn, kept, 4) == table(conn, RAW.format(key=key), 4), kept
    assert table(conn, "SELECT root, tasks, cost, missing, results, keepers"
                       " FROM cost_families", 5) == table(conn, (
        "SELECT t.family_root, count(DISTINCT t.id), total(r.cost), total(r.cost IS NULL),"
        " count(r.id), total(r.starred) FROM tasks t LEFT JOIN results r"
        " ON r.task_uuid = t.task_uuid WHERE t.family_root IS NOT NULL GROUP BY 1"), 5)
    assert conn.execute("SELECT tasks FROM task_totals").fetchone()[0] == conn.execute(
        "SELECT count(*) FROM tasks").fetchone()[0]


def fill(catalogue, rng, tasks=12, results=80):
    """Tasks (some re-runs of others) and results at random times, costs and stars."""
    made = []
    for _ in range(tasks):
        parent = rng.choice(made) if made and rng.random() < 0.4 else None
        made.append(add_task(catalogue, label=rng.choice([None, "a", "b"]),
                             width=rng.choice([512, 1024]), estimate=0.0024,
                             number_results=4, parent=parent))
    for _ in range(results):
        moment = datetime(2024, 3, 20, tzinfo=timezone.utc) + timedelta(
            seconds=rng.uniform(0, 30 * 86400))
        add_result(catalogue, rng.choice(made), moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                   rng.choice([None, 0.0006, 0.0013, 0.0032]), starred=int(rng.random() < 0.2))
    return made


def test_ingest_stars_relabels_and_deletes_keep_every_summary_exact(catalogue):
    rng = random.Random(7)
    made = fill(catalogue, rng)
    assert_folded(catalogue.conn)
    catalogue.ingest(made[3], results=[{"imageUUID": "img-new", "seed": 5, "cost": 0.0013,
                                        "imageURL": "https://x/y.jpg"}])
    curation.set_starred(catalogue, "img-new", True)
    assert_folded(catalogue.conn)
    with catalogue.write() as conn:
        conn.execute("UPDATE tasks SET label = 'moved', width = 768 WHERE task_uuid = ?",
                     (made[5],))
        conn.execute("UPDATE results SET starred = 1 - starred WHERE id % 3 = 0")
        conn.execute("UPDATE results SET cost = 0.0099 WHERE id % 5 = 0")
        conn.execute("DELETE FROM results WHERE id % 7 = 0")
    assert_folded(catalogue.conn)
    for task in made[:4]:  # roots and re-runs: their re-runs keep the family
        curation.delete_task(catalogue, task)
    assert_folded(catalogue.conn)


def test_an_import_keeps_every_summary_exact(tmp_path, catalogue, migrated_copy):
    made = fill(catalogue, random.Random(8))
    with catalogue.write() as conn:  # already archived, so the export needs no files
        conn.execute("UPDATE results SET archive_state = 'failed'")
    out = tmp_path / "export.zip"
    export(catalogue, FileStore(tmp_path / "source"), out)
    target = Catalogue(migrated_copy(tmp_path / "target" / "catalogue.db"))
    target.migrate()
    add_result(target, add_task(target, label="here before"), at("2024-04-01 10:00"), 0.0006)
    import_archive(target, FileStore(tmp_path / "target"), out)
    import_archive(target, FileStore(tmp_path / "target"), out)  # twice: changes nothing
    assert_folded(target.conn)
    assert target.conn.execute("SELECT count(*) FROM tasks").fetchone()[0] == len(made) + 1


def test_the_migrations_summarise_what_was_stored_before_them(tmp_path, monkeypatch):
    cat = Catalogue(tmp_path / "old.db")
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:7])
    cat.migrate()
    fill(cat, random.Random(9))
    monkeypatch.undo()
    assert cat.migrate() == migrations.MIGRATIONS[-1].version
    assert_folded(cat.conn)
    assert costs.breakdowns(cat.conn) == costs.breakdowns(cat.conn, 0, 2**40)  # all vs rollup
    assert cat.conn.execute("SELECT count(*) FROM tasks_fts WHERE tasks_fts MATCH ?",
                            ('"lightho"*',)).fetchone()[0] == 12


def fold_rows(conn, start, end):
    """The sums of the results whose bucket starts in ``[start, end)``, from the rows."""
    where = " AND ".join(f"{BUCKET} {op} {value}" for op, value in
                         ((">=", start), ("<", end)) if value is not None) or "1"
    row = conn.execute(
        f"SELECT total(r.cost), count(*), total(r.cost IS NULL), {SHARE} FROM results r"
        f" JOIN tasks t ON t.task_uuid = r.task_uuid WHERE {where}").fetchone()
    return tuple(round(v or 0, 9) for v in row)


def test_span_sums_are_the_rows_in_any_range(catalogue):
    rng = random.Random(10)
    fill(catalogue, rng, results=200)
    base = int(datetime(2024, 3, 19, tzinfo=timezone.utc).timestamp())
    for _ in range(200):
        bounds = sorted(base + rng.randrange(0, 33 * 86400, rng.choice([900, 1, 3600]))
                        for _ in range(rng.randint(2, 6)))
        if rng.random() < 0.3:
            bounds[0] = None
        if rng.random() < 0.3:
            bounds[-1] = None
        got = timeline.span_sums(catalogue.conn, bounds)
        for (start, end), sums in zip(zip(bounds, bounds[1:]), got):
            start = None if start is None else -(-start // 900) * 900  # buckets by start
            end = None if end is None else -(-end // 900) * 900
            assert tuple(round(v, 9) for v in sums) == fold_rows(catalogue.conn, start, end)


@pytest.mark.parametrize("name", ZONES)
def test_local_days_are_the_rows_by_local_date(catalogue, name):
    fill(catalogue, random.Random(11), results=150)
    task = catalogue.conn.execute("SELECT task_uuid FROM tasks LIMIT 1").fetchone()[0]
    # Around both DST changes of 2024 in Europe, and one in Australia.
    for moment in ("2024-03-31 00:59:59", "2024-03-31 01:00", "2024-04-06 15:45",
                   "2024-04-06 16:00", "2024-10-27 00:59", "2024-10-27 01:00"):
        add_result(catalogue, task, at(moment), 0.0006)
    tz = ZoneInfo(name)
    expected = {}
    for received_at, cost in catalogue.conn.execute("SELECT received_at, cost FROM results"):
        day = datetime.fromisoformat(received_at).astimezone(tz).date()
        cost_, results = expected.get(day, (0.0, 0))
        expected[day] = (round(cost_ + (cost or 0), 9), results + 1)
    got = {day: (round(cost, 9), results)
           for day, cost, results, _, _ in timeline.local_days(catalogue.conn, tz)}
    assert got == expected


def test_a_range_by_any_key_is_the_rows_in_it(catalogue):
    rng = random.Random(12)
    fill(catalogue, rng, results=200)
    base = int(datetime(2024, 3, 19, tzinfo=timezone.utc).timestamp())
    for _ in range(100):
        start, end = sorted(base + rng.randrange(0, 33 * 86400, 900) for _ in range(2))
        start, end = rng.choice([start, None]), rng.choice([end, None])
        where = " AND ".join(f"{BUCKET} {op} {value}" for op, value in
                             ((">=", start), ("<", end)) if value is not None) or "1"
        expected = table(catalogue.conn, RAW.format(key=DIMS).replace(
            " GROUP BY", f" WHERE {where} GROUP BY"), 4)
        got = {tuple(row[:4]): tuple(round(v, 9) for v in row[4:]) for row in
               timeline.span_breakdown(catalogue.conn, start, end, costs.DIMENSIONS)}
        assert {k: v for k, v in got.items() if any(v)} == expected


@pytest.mark.parametrize("small", [0, 10**9])
def test_the_costliest_tasks_of_a_range_by_either_index(catalogue, monkeypatch, small):
    monkeypatch.setattr(costs, "SMALL_RANGE", small)
    rng, made = random.Random(13), []
    for day in range(1, 29):
        task = add_task(catalogue, created_at=at(f"2024-05-{day:02d} 10:00"))
        add_result(catalogue, task, at(f"2024-05-{day:02d} 10:01"), rng.choice([0.0006, 0.0032]))
        made.append((task, day))
    start, end = costs.bounds(ZoneInfo("UTC"), *(datetime(2024, 5, d).date() for d in (8, 20)))
    expected = sorted(((catalogue.conn.execute("SELECT cost FROM tasks WHERE task_uuid = ?",
                                               (task,)).fetchone()[0], day, task)
                       for task, day in made if 8 <= day <= 20), reverse=True)[:4]
    got = costs.top_tasks(catalogue.conn, start=start, end=end, limit=4)
    assert [t["task_uuid"] for t in got] == [task for _, _, task in expected]


def test_a_migration_waits_for_another_process_past_its_busy_timeout(tmp_path, monkeypatch):
    import threading
    import time

    path = tmp_path / "catalogue.db"
    monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:7])
    Catalogue(path).migrate()
    monkeypatch.undo()
    other, late = Catalogue(path).conn, Catalogue(path, busy_timeout_ms=100)
    other.execute("BEGIN IMMEDIATE")  # another process is migrating (or writing)
    threading.Timer(0.5, lambda: other.execute("COMMIT")).start()
    began = time.monotonic()
    assert late.migrate() == migrations.MIGRATIONS[-1].version
    assert time.monotonic() - began >= 0.4
    assert late.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 100
