"""The fetcher's claims over one catalogue file: ttl first, leases, retries with backoff,
reasons recorded; two workers fetch each image exactly once; a worker killed mid-download
leaves no visible half file and its image is fetched once its lease runs out."""

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from archive.catalogue import Catalogue
from archive.safe_fetch import Policy
from archive.fetcher import Fetcher
from archive.filestore import FileStore
from tests.imagehost import (ConnectionRecorder, ImageHost, add_task, headers_then, picture,
                             status)

BIN = Path(sys.executable).parent


def rows(catalogue):
    cur = catalogue.conn.execute("SELECT * FROM results ORDER BY id")
    names = [d[0] for d in cur.description]
    return {row[1]: dict(zip(names, row)) for row in cur.fetchall()}


@pytest.fixture
def catalogue(tmp_path, migrated_copy):
    cat = Catalogue(migrated_copy(tmp_path / "data" / "catalogue.db"))
    cat.migrate()  # up to date already: a copy of the session's migrated catalogue
    return cat


@pytest.fixture
def store(tmp_path):
    return FileStore(tmp_path / "data")


@pytest.fixture
def host():
    h = ImageHost()
    yield h
    h.stop()


class FakeClock:
    """The fetcher's notion of now (``utcnow`` and ``later`` of archive.fetcher), moved
    only by the test: a backoff or a lease is then exact however slow the machine is."""

    def __init__(self, monkeypatch):
        self.now = datetime.now(timezone.utc)
        monkeypatch.setattr("archive.fetcher.utcnow", lambda: self.stamp(0))
        monkeypatch.setattr("archive.fetcher.later", self.stamp)

    def stamp(self, seconds):
        return (self.now + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    def advance(self, seconds):
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch):
    return FakeClock(monkeypatch)


def fetcher_for(catalogue, store, host, **kwargs):
    policy = Policy([f"http://{host.netloc}"], total_timeout=kwargs.pop("timeout", 5.0))
    return Fetcher(catalogue, store, policy, **kwargs)


def test_results_with_a_ttl_are_claimed_first_then_the_oldest(catalogue, store, host):
    old = add_task(catalogue, [f"{host.url}/old.jpg"])
    new = add_task(catalogue, [f"{host.url}/new.jpg"])
    expiring = add_task(catalogue, [f"{host.url}/ttl.jpg"], ttl=60)
    fetcher = fetcher_for(catalogue, store, host)
    order = [fetcher.claim("w")["image_uuid"] for _ in range(3)]
    assert order == expiring + old + new
    assert fetcher.claim("w") is None


def test_a_claim_is_exclusive_until_its_lease_runs_out(catalogue, store, host, clock):
    (image,) = add_task(catalogue, [f"{host.url}/a.jpg"])
    fetcher = fetcher_for(catalogue, store, host, lease=0.3)
    first = fetcher.claim("worker-1")
    assert first["image_uuid"] == image
    assert fetcher.claim("worker-2") is None
    clock.advance(0.29)
    assert fetcher.claim("worker-2") is None  # still held, just before its end
    clock.advance(0.02)
    assert fetcher.claim("worker-2")["image_uuid"] == image
    assert rows(catalogue)[image]["claimed_by"] == "worker-2"


def test_forbidden_urls_are_recorded_as_refused_with_their_reason(catalogue, store, host):
    recorder = ConnectionRecorder()
    p = recorder.port
    urls = [f"http://127.0.0.1:{p}/a.jpg", "http://169.254.169.254/latest/meta-data/",
            f"http://2130706433:{p}/", f"http://0x7f000001:{p}/", f"http://localhost:{p}/",
            "file:///etc/passwd", f"ftp://127.0.0.1:{p}/a.jpg", "data:image/png;base64,AAAA",
            f"http://[::ffff:127.0.0.1]:{p}/"]
    images = add_task(catalogue, urls)
    assert fetcher_for(catalogue, store, host).drain() == len(urls)
    recorder.stop()
    assert recorder.accepted == 0
    table = rows(catalogue)
    for image, url in zip(images, urls):
        row = table[image]
        assert row["archive_state"] == "refused", url
        assert row["archive_error"].startswith("refused: "), row["archive_error"]
        assert ("allowlist" in row["archive_error"] or "scheme" in row["archive_error"])
        assert row["claimed_by"] is None and row["sha256"] is None


def test_transient_failures_back_off_then_fail_permanent_ones_fail_at_once(
        catalogue, store, host, clock):
    host.routes.update({"/busy.jpg": status(503), "/gone.jpg": status(404)})
    busy, gone = add_task(catalogue, [f"{host.url}/busy.jpg", f"{host.url}/gone.jpg"])
    # 10 s before the second attempt, 20 s before the third, each within ±20 %, on the
    # fake clock: however slow the machine, no attempt can come due early (a real 50 ms
    # backoff did, under load, before the "not due yet" check).
    fetcher = fetcher_for(catalogue, store, host, max_attempts=3, backoff=10)
    fetcher.drain()
    table = rows(catalogue)
    assert (table[gone]["archive_state"], table[gone]["archive_error"]) == ("failed", "HTTP 404 Not Found")
    assert table[busy]["archive_state"] == "pending"
    assert table[busy]["archive_attempts"] == 1
    assert table[busy]["archive_error"] == "attempt 1: HTTP 503 Service Unavailable"
    assert table[busy]["next_attempt_at"] > table[busy]["received_at"]
    assert fetcher.drain() == 0  # not due yet
    for attempt, wait in ((2, 10), (3, 20)):  # the backoff doubles
        clock.advance(wait * 0.8 - 0.1)
        assert fetcher.drain() == 0, f"attempt {attempt} came before its backoff"
        clock.advance(wait * 0.4 + 0.2)
        assert fetcher.drain() == 1, f"attempt {attempt} did not come after its backoff"
        assert rows(catalogue)[busy]["archive_attempts"] == attempt
    row = rows(catalogue)[busy]
    assert row["archive_state"] == "failed" and row["archive_attempts"] == 3
    assert row["archive_error"].startswith("gave up after 3 attempts: HTTP 503")
    assert host.gets["/busy.jpg"] == 3 and host.gets["/gone.jpg"] == 1


def test_a_content_length_that_is_no_number_fails_at_once_with_its_reason(
        catalogue, store, host):
    """'²' is a digit to str.isdigit, not to int(): it once escaped as a ValueError, and
    the image was claimed again at every lease's end, with no attempt ever counted."""
    host.routes["/odd.jpg"] = headers_then(lambda w: w.write(picture()), length="²")
    (image,) = add_task(catalogue, [f"{host.url}/odd.jpg"])
    assert fetcher_for(catalogue, store, host).drain() == 1
    row = rows(catalogue)[image]
    assert (row["archive_state"], row["archive_attempts"]) == ("failed", 1)
    assert row["archive_error"] == "Content-Length '²' is not a number of bytes"
    assert row["claimed_by"] is None and host.gets["/odd.jpg"] == 1


def test_an_unexpected_error_counts_as_an_attempt_but_a_full_disk_does_not(
        catalogue, store, host, monkeypatch):
    (image,) = add_task(catalogue, [f"{host.url}/a.jpg"])
    fetcher = fetcher_for(catalogue, store, host, max_attempts=2, backoff=0)

    def fails(exc):
        def download(*args):
            raise exc
        monkeypatch.setattr("archive.fetcher.download", download)

    fails(OSError(28, "No space left on device"))
    with pytest.raises(OSError):  # not the image's fault: the claim is left to expire
        fetcher.fetch_one("w")
    assert rows(catalogue)[image]["archive_attempts"] == 0
    catalogue.conn.execute("UPDATE results SET claimed_until = NULL")
    fails(ZeroDivisionError("a bug"))
    fetcher.drain()
    row = rows(catalogue)[image]
    assert (row["archive_state"], row["archive_attempts"]) == ("failed", 2)
    assert row["archive_error"] == (
        "gave up after 2 attempts: unexpected error: ZeroDivisionError: a bug")


def test_two_workers_on_one_catalogue_fetch_each_image_exactly_once(tmp_path, catalogue, host):
    count = 24
    for i in range(count):
        host.routes[f"/{i}.png"] = _slowly(picture("PNG", colour=(i * 10, 255 - i * 10, 7)))
    add_task(catalogue, [f"{host.url}/{i}.png" for i in range(count)])
    path = tmp_path / "data" / "catalogue.db"
    workers = [fetcher_for(Catalogue(path), FileStore(tmp_path / "data"), host, concurrency=3,
                           poll_interval=0.02) for _ in range(2)]
    stops = [w.start() for w in workers]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and any(
            r["archive_state"] != "archived" for r in rows(catalogue).values()):
        time.sleep(0.05)
    for stop in stops:
        stop.set()
    assert all(r["archive_state"] == "archived" for r in rows(catalogue).values())
    assert sorted(host.gets.values()) == [1] * count
    assert {r["archive_attempts"] for r in rows(catalogue).values()} == {1}


def _slowly(data, delay=0.03):
    def route(handler):
        time.sleep(delay)  # long enough for the workers' claims to overlap
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    return route


def test_a_worker_killed_mid_download_leaves_no_half_file_and_the_image_comes_later(
        tmp_path, catalogue, store, host, clock):
    if not (BIN / "runware-archive").exists():
        pytest.skip("run: .venv/bin/pip install -e '.[test]'")
    data = picture("PNG", size=(640, 480), colour=(10, 200, 30))
    half_sent, release = threading.Event(), threading.Event()

    def route(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if host.gets["/big.png"] == 1:  # the first worker gets half, then silence
            handler.wfile.write(data[: len(data) // 2])
            handler.wfile.flush()
            half_sent.set()
            release.wait(10)
            return
        handler.wfile.write(data)

    host.routes["/big.png"] = route
    (image,) = add_task(catalogue, [f"{host.url}/big.png"])
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
           "RUNWARE_ARCHIVE_DIR": str(tmp_path / "data"),
           "RUNWARE_ARCHIVE_IMAGE_HOSTS": f"http://{host.netloc}",
           "RUNWARE_ARCHIVE_FETCH_LEASE": "1", "RUNWARE_ARCHIVE_FETCH_CONCURRENCY": "1"}
    worker = subprocess.Popen([str(BIN / "runware-archive"), "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert half_sent.wait(20), "the worker never started the download"
        time.sleep(0.2)  # let the half reach its temporary file
        worker.send_signal(signal.SIGKILL)
        worker.wait(5)
    finally:
        if worker.poll() is None:
            worker.kill()
        release.set()
    row = rows(catalogue)[image]
    assert row["archive_state"] == "pending" and f":{worker.pid}:" in row["claimed_by"]
    assert [f for folder, _, files in os.walk(store.images) for f in files
            if folder != store.tmp] == []
    fetcher = fetcher_for(catalogue, store, host, lease=1)
    # This fetcher's clock, set either side of the dead worker's lease: on a slow machine
    # the real second may be over before the first look.
    clock.now = _moment(row["claimed_until"]) - timedelta(milliseconds=10)
    assert fetcher.drain() == 0  # the dead worker's lease still holds
    clock.now += timedelta(milliseconds=20)
    assert fetcher.drain() == 1
    row = rows(catalogue)[image]
    assert row["archive_state"] == "archived" and row["archive_attempts"] == 1
    assert row["sha256"] == hashlib.sha256(data).hexdigest()
    with open(store.path(row["sha256"], "png"), "rb") as f:
        assert f.read() == data
    assert host.gets["/big.png"] == 2
    assert store.sweep_temp(older_than=0) <= 1  # the dead worker's part file, if any
    assert os.listdir(store.tmp) == []


def _moment(stamp):
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def test_an_image_archived_after_a_failed_attempt_keeps_no_trace_of_the_retry(
        catalogue, store, host):
    host.routes["/late.png"] = status(503)
    (image,) = add_task(catalogue, [f"{host.url}/late.png"])
    fetcher = fetcher_for(catalogue, store, host, backoff=3600)
    assert fetcher.drain() == 1
    data = picture("PNG", colour=(3, 30, 90))
    host.routes["/late.png"] = data
    with catalogue.write() as conn:  # its backoff is over
        conn.execute("UPDATE results SET next_attempt_at = NULL WHERE image_uuid = ?",
                     (image,))
    assert fetcher.drain() == 1
    row = rows(catalogue)[image]
    assert (row["archive_state"], row["sha256"], row["file_ext"], row["file_size"],
            row["img_width"], row["img_height"]) == (
        "archived", hashlib.sha256(data).hexdigest(), "png", len(data), 96, 64)
    assert (row["archive_attempts"], row["archive_error"], row["next_attempt_at"],
            row["claimed_by"], row["claimed_until"]) == (2, None, None, None, None)
    assert row["archived_at"] is not None and host.gets["/late.png"] == 2
