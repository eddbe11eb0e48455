import json
import sqlite3
import threading
import uuid

import pytest

from archive.catalogue import BODY_CAP, Catalogue, ForeignResult, UnknownTask, mark_archived
from archive.images import StoredImage
from archive.migrations import MIGRATIONS


@pytest.fixture
def catalogue(tmp_path, migrated_copy):
    cat = Catalogue(migrated_copy(tmp_path / "catalogue.db"))
    cat.migrate()  # up to date already: a copy of the session's migrated catalogue
    return cat


def add_task(catalogue, number_results=2, **extra):
    task_uuid = str(uuid.uuid4())
    catalogue.create_task({
        "task_uuid": task_uuid, "model": "runware:twinflow-z-image-turbo@0",
        "positive_prompt": extra.pop("prompt", "a copper aviary market"),
        "params": {"taskUUID": task_uuid}, "provider": "sandbox",
        "number_results": number_results, **extra,
    })
    return task_uuid


def result(task_uuid, seed=1, cost=0.0006, **extra):
    return {"taskType": "imageInference", "taskUUID": task_uuid,
            "imageUUID": str(uuid.uuid4()), "seed": seed, "cost": cost,
            "imageURL": "https://im.runware.ai/image/x.jpg", **extra}


def count(catalogue, table, where="1", args=()):
    return catalogue.conn.execute(f"SELECT count(*) FROM {table} WHERE {where}", args).fetchone()[0]


def test_migrations_are_recorded_and_idempotent(tmp_path):
    catalogue = Catalogue(tmp_path / "catalogue.db")  # from nothing, not the template
    assert catalogue.migrate() == MIGRATIONS[-1].version
    again = Catalogue(tmp_path / "catalogue.db")
    assert again.migrate() == MIGRATIONS[-1].version
    assert count(again, "_migrations") == len(MIGRATIONS)
    assert again.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert again.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert again.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_status_moves_submitted_partial_complete(catalogue):
    task = add_task(catalogue, number_results=2)
    catalogue.mark_acknowledged(task, ack={"data": [{"taskUUID": task}]})
    assert catalogue.get_task(task)["status"] == "submitted"
    first = catalogue.ingest(task, results=[result(task, seed=7)])
    assert first.status == "partial" and first.verdict == "accepted"
    second = catalogue.ingest(task, results=[result(task, seed=8, cost=0.0013)])
    assert second.status == "complete"
    row = catalogue.get_task(task)
    assert row["results_received"] == 2
    assert row["cost"] == pytest.approx(0.0019)
    assert row["completed_at"] is not None
    assert [r["seed"] for r in row["results"]] == [7, 8]


def test_a_late_ack_does_not_move_a_task_back(catalogue):
    task = add_task(catalogue, number_results=1)
    catalogue.ingest(task, results=[result(task)])
    catalogue.mark_acknowledged(task, ack={"data": []})
    assert catalogue.get_task(task)["status"] == "complete"


def test_a_duplicate_changes_nothing_but_the_log(catalogue):
    task = add_task(catalogue, number_results=2)
    item = result(task)
    catalogue.ingest(task, results=[item])
    before = catalogue.get_task(task)
    again = catalogue.ingest(task, results=[item])
    assert again.verdict == "duplicate" and again.duplicates == [item["imageUUID"]]
    after = catalogue.get_task(task)
    assert after == before
    assert count(catalogue, "results") == 1
    verdicts = [d["verdict"] for d in catalogue.deliveries(task_uuid=task)]
    assert verdicts == ["duplicate", "accepted"]


def test_an_error_delivery_marks_the_task_with_the_providers_code(catalogue):
    task = add_task(catalogue, number_results=2)
    outcome = catalogue.ingest(task, errors=[{
        "taskUUID": task, "code": "timeoutProvider", "message": "the provider timed out"}])
    assert outcome.status == "error" and outcome.verdict == "failed"  # not a green "accepted"
    row = catalogue.get_task(task)
    assert (row["status"], row["error_code"], row["error_message"]) == (
        "error", "timeoutProvider", "the provider timed out")
    catalogue.ingest(task, results=[result(task)])
    assert catalogue.get_task(task)["status"] == "error"
    catalogue.ingest(task, results=[result(task)])
    assert catalogue.get_task(task)["status"] == "complete"


def test_a_result_without_cost_is_counted_apart(catalogue):
    task = add_task(catalogue, number_results=2)
    catalogue.ingest(task, results=[result(task, cost=None), result(task, cost=0.0006)])
    row = catalogue.get_task(task)
    assert row["cost"] == pytest.approx(0.0006) and row["cost_missing"] == 1


def test_unknown_task_writes_nothing(catalogue):
    ghost = str(uuid.uuid4())
    with pytest.raises(UnknownTask):
        catalogue.ingest(ghost, results=[result(ghost)])
    assert count(catalogue, "results") == 0 and count(catalogue, "deliveries") == 0


def test_a_result_of_another_task_writes_nothing(catalogue):
    mine, theirs = add_task(catalogue), add_task(catalogue)
    with pytest.raises(ForeignResult):
        catalogue.ingest(mine, results=[result(mine), result(theirs)])
    assert count(catalogue, "results") == 0 and count(catalogue, "deliveries") == 0


def test_a_failure_inside_the_transaction_rolls_everything_back(catalogue):
    task = add_task(catalogue, number_results=2)
    bad = result(task)
    bad["seed"] = 2**70  # too big for SQLite: fails after the first insert
    with pytest.raises(OverflowError):
        catalogue.ingest(task, results=[result(task), bad])
    assert count(catalogue, "results") == 0 and count(catalogue, "deliveries") == 0
    assert catalogue.get_task(task)["status"] == "sending"


def test_concurrent_duplicates_are_stored_once(tmp_path, catalogue):
    task = add_task(catalogue, number_results=1)
    item = result(task)
    outcomes = []

    def deliver():
        mine = Catalogue(tmp_path / "catalogue.db")
        outcomes.append(mine.ingest(task, results=[item]).verdict)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["accepted"] + ["duplicate"] * 7
    assert count(catalogue, "results") == 1


def test_the_logged_body_is_capped_and_inline_data_elided(catalogue):
    task = add_task(catalogue, number_results=1)
    catalogue.ingest(task, results=[result(task)], raw_body=b"x" * (BODY_CAP + 10))
    logged = catalogue.deliveries(task_uuid=task)[0]
    assert logged["body_size"] == BODY_CAP + 10
    assert len(logged["body"]) < BODY_CAP + 100 and "10 more bytes" in logged["body"]
    inline = result(task, imageBase64Data="QUJD" * 1000)
    del inline["imageURL"]
    catalogue.ingest(task, results=[inline])
    raw = json.loads(catalogue.get_task(task)["results"][-1]["raw"])
    assert raw["imageBase64Data"] == "<4000 characters, archived separately>"


def test_rejections_are_logged(catalogue):
    catalogue.log_rejection(source="webhook", reason="invalid token", status_code=403,
                            task_uuid="t", raw_body=None, remote_addr="127.0.0.1")
    row = catalogue.deliveries(verdict="rejected")[0]
    assert (row["reason"], row["status_code"], row["body"]) == ("invalid token", 403, None)


def test_prompts_are_searchable_and_status_updates_do_not_reindex(catalogue):
    task = add_task(catalogue, prompt="glasshouse tea train platform")
    add_task(catalogue, prompt="lantern bazaar ice harbor")
    catalogue.ingest(task, results=[result(task)])
    hits = catalogue.conn.execute(
        "SELECT t.task_uuid FROM tasks_fts JOIN tasks t ON t.id = tasks_fts.rowid"
        " WHERE tasks_fts MATCH ?", ["glass*"]).fetchall()
    assert hits == [(task,)]
    assert count(catalogue, "tasks_fts") == 2


def test_keyset_listing_is_newest_first(catalogue):
    made = [add_task(catalogue) for _ in range(5)]
    page = catalogue.list_tasks(limit=2)
    assert [t["task_uuid"] for t in page] == made[:-3:-1]
    rest = catalogue.list_tasks(limit=10, before_id=page[-1]["id"])
    assert [t["task_uuid"] for t in rest] == made[2::-1]


def test_a_repeated_error_delivery_is_counted_once(catalogue):
    task = add_task(catalogue, number_results=2)
    error = {"taskUUID": task, "code": "timeoutProvider", "message": "slow"}
    assert catalogue.ingest(task, errors=[error]).verdict == "failed"
    again = catalogue.ingest(task, errors=[dict(error)])
    assert again.verdict == "duplicate" and again.errors == 0
    other = catalogue.ingest(task, errors=[dict(error, message="another failure")])
    assert other.verdict == "failed"
    assert catalogue.get_task(task)["errors_received"] == 2


def test_requests_reuse_released_connections(app, live_server, monkeypatch):
    """Werkzeug (a thread per request) and gevent (a greenlet per request) would open a
    connection per request, ~1 ms of schema reading each; released ones are reused."""
    import requests

    catalogue = app.extensions["catalogue"]
    opened, real = [], catalogue._connect

    def counting():
        opened.append(threading.current_thread().name)
        return real()

    monkeypatch.setattr(catalogue, "_connect", counting)
    for _ in range(20):
        assert requests.get(live_server.url + "/api/tasks", timeout=5).status_code == 200
    assert len(opened) <= 2  # one, plus perhaps one raced before the first release


def test_a_released_connection_in_a_transaction_is_rolled_back(catalogue):
    task = add_task(catalogue)
    conn = catalogue.conn
    conn.execute("BEGIN")
    conn.execute("UPDATE tasks SET label = 'half-done' WHERE task_uuid = ?", (task,))
    catalogue.release()
    assert not conn.in_transaction
    assert catalogue.get_task(task)["label"] is None


@pytest.mark.parametrize("ttl, expires", [(60, "2026-01-01T00:01:00.000000Z"),
                                          (2 ** 62, "9999-12-31T23:59:59.999999Z")])
def test_a_ttl_of_any_size_gives_an_expiry(ttl, expires):
    """No source caps ttl; one past the year 9999 used to fail every delivery of its task."""
    from archive.ingest import expiry as _expiry

    assert _expiry("2026-01-01T00:00:00.000000Z", ttl) == expires


def test_a_catalogue_in_memory_migrates_ingests_and_reads_back():
    """``:memory:`` is one database for every connection of its catalogue (the committer's
    writer thread opens its own), alive as long as the catalogue, and no other's."""
    catalogue = Catalogue(":memory:")
    assert catalogue.migrate() == MIGRATIONS[-1].version
    task = add_task(catalogue, number_results=1)
    item = result(task, cost=0.0013)
    assert catalogue.ingest(task, results=[item]).new == [item["imageUUID"]]
    row = catalogue.get_task(task)
    assert (row["status"], row["results_received"], row["cost"]) == ("complete", 1, 0.0013)
    assert [r["image_uuid"] for r in row["results"]] == [item["imageUUID"]]
    seen = []  # another thread, so another connection: the same database
    reader = threading.Thread(target=lambda: seen.append(catalogue.has_task(task)))
    reader.start()
    reader.join()
    assert seen == [True]
    other = Catalogue(":memory:")
    other.migrate()
    assert not other.has_task(task)


def test_an_image_is_marked_archived_once_and_only_under_its_claim(catalogue):
    task = add_task(catalogue, number_results=2)
    first, second = result(task), result(task)
    catalogue.ingest(task, results=[first, second])
    png, jpg = StoredImage("a" * 64, "png", 10, 3, 2), StoredImage("b" * 64, "jpg", 20, 4, 4)
    with catalogue.write() as conn:  # the first failed once, and worker-2 took it since
        conn.execute("UPDATE results SET claimed_by = 'worker-2', claimed_until = 'later',"
                     " archive_error = 'attempt 1: HTTP 503', archive_attempts = 1,"
                     " next_attempt_at = 'soon' WHERE image_uuid = ?", (first["imageUUID"],))
        assert not mark_archived(conn, first["imageUUID"], png, claimed_by="worker-1")
        assert mark_archived(conn, first["imageUUID"], png, claimed_by="worker-2",
                             attempted=True)
        assert not mark_archived(conn, first["imageUUID"], jpg)  # it keeps its file
        assert mark_archived(conn, second["imageUUID"], jpg, at="2026-01-02T03:04:05.000000Z")
    one, two = catalogue.get_task(task)["results"]
    assert (one["archive_state"], one["sha256"], one["file_ext"], one["file_size"],
            one["img_width"], one["img_height"]) == ("archived", "a" * 64, "png", 10, 3, 2)
    assert (one["archive_attempts"], one["archive_error"], one["next_attempt_at"],
            one["claimed_by"], one["claimed_until"]) == (2, None, None, None, None)
    assert (two["sha256"], two["archived_at"], two["archive_attempts"]) == (
        "b" * 64, "2026-01-02T03:04:05.000000Z", 0)
