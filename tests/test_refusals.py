"""Forged traffic cannot grow the catalogue without bound: every refusal is counted (per
hour, reason kind and source address), only a capped sample of refused bodies is kept, the
delivery log has a retention that never takes an accepted delivery of a task still in the
catalogue, and ``/deliveries`` and ``/metrics`` read small tables, not the whole log."""

import time

import requests

from archive import delivery_log
from receiver.worker import prune_log
from tests.test_webhooks import make_task, result_for, rows


def forge(sender, task, count, token="0" * 64):
    for _ in range(count):
        assert sender.result(task, result_for(task), token=token).status_code == 403


def test_refusals_are_counted_and_only_a_sample_is_kept(app, sender):
    catalogue = app.extensions["catalogue"]
    task = make_task(catalogue)
    forge(sender, task, delivery_log.SAMPLES_PER_SOURCE + 15)
    [(reason, address, count)] = rows(catalogue, "SELECT reason, remote_addr, count FROM"
                                                 " refusals")
    assert (address, count) == ("127.0.0.1", delivery_log.SAMPLES_PER_SOURCE + 15)
    logged = rows(catalogue, "SELECT count(*) FROM deliveries WHERE verdict = 'rejected'")
    assert logged == [(delivery_log.SAMPLES_PER_SOURCE,)]
    assert delivery_log.counts_by_verdict(catalogue.conn)["rejected"] == (
        delivery_log.SAMPLES_PER_SOURCE + 15)


def test_the_hour_keeps_at_most_its_sample_however_many_sources(app, monkeypatch):
    catalogue = app.extensions["catalogue"]
    monkeypatch.setattr(delivery_log, "SAMPLES_PER_HOUR", 30)
    monkeypatch.setattr(delivery_log, "SOURCES_PER_HOUR", 40)
    for n in range(100):
        catalogue.log_rejection(source="webhook", reason="wrong token", status_code=403,
                                raw_body=b"x" * 100, remote_addr=f"10.0.{n // 250}.{n % 250}")
    assert rows(catalogue, "SELECT count(*) FROM deliveries") == [(30,)]
    assert rows(catalogue, "SELECT count(*), sum(count) FROM refusals") == [(41, 100)]
    assert rows(catalogue, "SELECT count FROM refusals WHERE remote_addr = ?",
                (delivery_log.MORE_SOURCES,)) == [(60,)]


def test_a_real_webhook_still_lands_after_a_forged_flood(app, sender):
    catalogue = app.extensions["catalogue"]
    task = make_task(catalogue, number_results=1)
    forge(sender, task, 300)
    assert sender.result(task, result_for(task)).json()["verdict"] == "accepted"
    size = rows(catalogue, "SELECT total(length(body)) FROM deliveries")[0][0]
    assert size < 64 * 1024  # 300 forged posts kept ~10 bodies, not 300


def test_the_log_page_shows_the_counts(app, client, sender):
    task = make_task(app.extensions["catalogue"])
    forge(sender, task, 3)
    [(kind,)] = rows(app.extensions["catalogue"], "SELECT reason FROM refusals")
    page = client.get("/deliveries").get_data(as_text=True)
    assert "Refusals in the last 24 hours" in page and kind in page


def test_retention_prunes_all_but_accepted_deliveries_of_kept_tasks(app, sender):
    catalogue = app.extensions["catalogue"]
    kept, gone = make_task(catalogue), make_task(catalogue)
    for task in (kept, gone):
        item = result_for(task)
        sender.result(task, item)
        sender.result(task, item)  # a duplicate
    forge(sender, kept, 2)
    with catalogue.write() as conn:
        conn.execute("UPDATE deliveries SET received_at = '2020-01-01T00:00:00.000000Z'")
        conn.execute("UPDATE refusals SET hour = '2020-01-01T00'")
        conn.execute("DELETE FROM results WHERE task_uuid = ?", (gone,))
        conn.execute("DELETE FROM tasks WHERE task_uuid = ?", (gone,))
    fresh = make_task(catalogue)
    forge(sender, fresh, 1)  # recent: stays
    before = delivery_log.counts_by_verdict(catalogue.conn)
    assert prune_log(catalogue, app.config) == 5  # 2 duplicates, 1 accepted, 2 refusals
    left = rows(catalogue, "SELECT task_uuid, verdict FROM deliveries ORDER BY id")
    assert left == [(kept, "accepted"), (fresh, "rejected")]
    assert rows(catalogue, "SELECT count(*) FROM refusals") == [(1,)]
    assert delivery_log.counts_by_verdict(catalogue.conn) == before  # counters never fall


def test_first_id_from_bisects_the_log(app):
    catalogue = app.extensions["catalogue"]
    conn = catalogue.conn
    assert delivery_log.first_id_from(conn, "2026-01-01") is None
    with catalogue.write() as w:
        for day in range(1, 30):
            w.execute("INSERT INTO deliveries (received_at, source, verdict, status_code)"
                      " VALUES (?, 'webhook', 'duplicate', 200)", (f"2026-01-{day:02d}",))
    ids = [r[0] for r in conn.execute("SELECT id FROM deliveries ORDER BY id")]
    assert delivery_log.first_id_from(conn, "2026-01-10") == ids[9]
    assert delivery_log.first_id_from(conn, "2025-12-31") == ids[0]
    assert delivery_log.first_id_from(conn, "2027-01-01") == ids[-1] + 1


def test_metrics_read_the_counts(app, live_server, sender):
    task = make_task(app.extensions["catalogue"], number_results=1)
    sender.result(task, result_for(task))
    forge(sender, task, 2)
    text = requests.get(f"{live_server.url}/metrics", timeout=5).text
    assert 'runware_archive_deliveries_total{verdict="accepted"} 1.0' in text
    assert 'runware_archive_deliveries_total{verdict="rejected"} 2.0' in text


def test_the_counts_survive_a_migration_of_an_old_log(tmp_path):
    """m015 counts what an older catalogue already logged."""
    from archive.catalogue import Catalogue
    from archive import migrations

    catalogue = Catalogue(tmp_path / "old.db")
    db = catalogue.db
    real = migrations.MIGRATIONS
    try:
        migrations.MIGRATIONS = real[:14]
        catalogue.migrate()
    finally:
        migrations.MIGRATIONS = real
    with catalogue.write() as conn:
        for verdict in ("accepted", "rejected", "rejected"):
            conn.execute("INSERT INTO deliveries (received_at, source, verdict, status_code,"
                         " reason, remote_addr) VALUES (?, 'webhook', ?, 403, 'wrong token',"
                         " '1.2.3.4')", (time.strftime("%Y-%m-%dT%H:%M:%S.000000Z"), verdict))
    catalogue.migrate()
    assert delivery_log.counts_by_verdict(db.conn) == {"accepted": 1, "rejected": 2}
    assert rows(catalogue, "SELECT reason, remote_addr, count FROM refusals") == [
        ("wrong token", "1.2.3.4", 2)]
