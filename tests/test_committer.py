"""Group commit's stages after the COMMIT. Durability: with ``synchronous=FULL`` a
delivery is acknowledged only after the WAL holding its commit was flushed to disk, and a
failed flush is never an acknowledgement (the real ``fdatasync`` runs in every test; the
wrappers only watch it or, in one test, make it fail as a dying disk would). Checkpoints:
run in the background, they keep the WAL from growing."""

import errno
import sqlite3
import threading

import pytest

from archive import committer
from archive.catalogue import Catalogue
from receiver.provider.tokens import make_token
from tests.test_catalogue import add_task, result


@pytest.fixture
def flushes(monkeypatch):
    """Every flush the syncer makes: (path, image UUIDs visible to another connection at
    that moment); the real flush still runs."""
    seen, real = [], committer._fdatasync

    def watched(path):
        db = sqlite3.connect(path[:-len("-wal")])
        try:
            visible = {row[0] for row in db.execute("SELECT image_uuid FROM results")}
        finally:
            db.close()
        seen.append((path, visible))
        real(path)

    monkeypatch.setattr(committer, "_fdatasync", watched)
    return seen


def test_a_delivery_is_released_only_after_a_flush_of_its_commit(tmp_path, flushes):
    catalogue = Catalogue(tmp_path / "catalogue.db", synchronous="FULL")
    catalogue.migrate()
    task = add_task(catalogue)
    item = result(task)
    outcome = catalogue.ingest(task, results=[item], raw_body=b"{}")
    assert outcome.new == [item["imageUUID"]]
    # the flush that released us saw the row committed, and it flushed the WAL
    path, visible = flushes[-1]
    assert path == str(tmp_path / "catalogue.db") + "-wal"
    assert item["imageUUID"] in visible


def test_concurrent_deliveries_share_flushes_and_all_are_stored(tmp_path, flushes):
    catalogue = Catalogue(tmp_path / "catalogue.db", synchronous="FULL")
    catalogue.migrate()
    tasks = [add_task(catalogue, number_results=4) for _ in range(25)]
    items = [(task, result(task)) for task in tasks for _ in range(4)]
    released = []

    def send(share):
        for task, item in share:
            catalogue.ingest(task, results=[item], raw_body=b"{}")
            # at the moment we were released, some flush had already seen our row
            assert any(item["imageUUID"] in visible for _, visible in flushes)
            released.append(item["imageUUID"])

    threads = [threading.Thread(target=send, args=(items[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(released) == sorted(item["imageUUID"] for _, item in items)
    assert catalogue.conn.execute("SELECT count(*) FROM results").fetchone()[0] == 100
    assert 1 <= len(flushes) <= 100


def test_normal_durability_does_not_flush(tmp_path, flushes):
    catalogue = Catalogue(tmp_path / "catalogue.db", synchronous="NORMAL")
    catalogue.migrate()
    task = add_task(catalogue)
    catalogue.ingest(task, results=[result(task)], raw_body=b"{}")
    assert flushes == []


def test_a_failed_flush_answers_503_and_the_retry_is_acknowledged(app, client, monkeypatch):
    """A disk that cannot flush: the webhook must not say 2xx. Runware retries; once the
    disk is back, the retry is acknowledged (as a duplicate: the row was committed)."""
    real = committer._fdatasync

    def failing(path):
        raise OSError(errno.EIO, "input/output error")

    catalogue = app.extensions["catalogue"]
    task = add_task(catalogue)
    url = (f"/webhooks/runware/{task}?token="
           f"{make_token(task, secret=app.extensions['webhook_secret'])}")
    delivery = {"data": [result(task)]}
    monkeypatch.setattr(committer, "_fdatasync", failing)
    refused = client.post(url, json=delivery)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "1"
    assert refused.get_json()["errors"][0]["code"] == "unavailable"
    monkeypatch.setattr(committer, "_fdatasync", real)
    retried = client.post(url, json=delivery)
    assert retried.status_code == 200
    assert retried.get_json()["new"] + retried.get_json()["duplicates"] == 1
    rows = catalogue.conn.execute(
        "SELECT count(*) FROM results WHERE task_uuid = ?", (task,)).fetchone()[0]
    assert rows == 1


def test_checkpoints_run_in_the_background_and_bound_the_wal(tmp_path, monkeypatch):
    """The writer no longer checkpoints at SQLite's 1,000 pages (here: never); the
    checkpointer thread must keep the WAL from growing with every delivery."""
    monkeypatch.setattr(committer, "WRITER_AUTOCHECKPOINT", 0)  # 0: the writer never does
    monkeypatch.setattr(committer, "CHECKPOINT_EVERY", 8)
    checkpoints = []
    catalogue = Catalogue(tmp_path / "catalogue.db", synchronous="NORMAL")
    catalogue.migrate()
    real_connect = catalogue._group._connect

    def connect():  # the checkpointer's and the writer's connections, watched
        conn = real_connect()
        conn.set_trace_callback(
            lambda sql: checkpoints.append(sql) if "wal_checkpoint" in sql else None)
        return conn

    catalogue._group._connect = connect
    tasks = [add_task(catalogue, number_results=4) for _ in range(100)]
    for task in tasks:
        for _ in range(4):
            catalogue.ingest(task, results=[result(task)], raw_body=b"{}")
    wal = tmp_path / "catalogue.db-wal"
    assert checkpoints, "no background checkpoint ran"
    # 400 lone commits of ~20 pages each would be ~30 MiB of WAL without checkpoints
    assert wal.stat().st_size < 8 << 20
    assert catalogue.conn.execute("SELECT count(*) FROM results").fetchone()[0] == 400
    assert catalogue.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
