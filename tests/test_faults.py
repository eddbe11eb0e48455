"""Nothing lost, nothing let in: storms, crashes, locks, a full disk, hostile requests.

These run the service under gunicorn (2 workers x 8 threads), as in production, with
real loopback HTTP and a real catalogue file.
"""

import json
import random
import socket
import sqlite3
import subprocess
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from archive.catalogue import Catalogue
from receiver.provider.tokens import load_or_create_secret, make_token
from tests.gunicorn_server import GunicornService, free_port

pytestmark = pytest.mark.slow
# The gunicorn runs are also marked load: seconds each, so the default run leaves them to
# `pytest -m load` (.ci/run runs both). The full disk one needs no gunicorn and stays.


def seed_catalogue(data_dir, tasks, per_task=4):
    """Tasks straight into a catalogue; returns (secret, [task uuids])."""
    catalogue = Catalogue(data_dir / "catalogue.db")
    catalogue.migrate()
    secret = load_or_create_secret(str(data_dir / "webhook-secret"))
    made = []
    with catalogue.write() as conn:
        for _ in range(tasks):
            task_uuid = str(uuid.uuid4())
            catalogue.create_task({
                "task_uuid": task_uuid, "model": "runware:twinflow-z-image-turbo@0",
                "positive_prompt": "a tidal library atrium", "params": {},
                "provider": "runware", "number_results": per_task, "status": "submitted",
            }, conn=conn)
            made.append(task_uuid)
    return secret, made


def delivery(task_uuid, secret, *, token=None):
    image = str(uuid.uuid4())
    body = json.dumps({"data": [{
        "taskType": "imageInference", "taskUUID": task_uuid, "imageUUID": image,
        "imageURL": f"https://im.runware.ai/image/os/a1/ws/2/ii/{image}.jpg",
        "seed": random.randrange(2**32), "cost": 0.0006}]})
    token = token or make_token(task_uuid, secret=secret)
    return {"path": f"/webhooks/runware/{task_uuid}?token={token}", "body": body,
            "image": image}


def post(session, base, item, timeout=10):
    return session.post(base + item["path"], data=item["body"], timeout=timeout,
                        headers={"Content-Type": "application/json"})


def catalogue_counts(data_dir):
    conn = sqlite3.connect(data_dir / "catalogue.db")
    try:
        images = [r[0] for r in conn.execute("SELECT image_uuid FROM results")]
        # Every delivery counted, by verdict; refusals counted by reason (the log itself
        # keeps only a sample of refused bodies).
        verdicts = dict(conn.execute("SELECT verdict, count FROM delivery_counts").fetchall())
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        reasons = dict(conn.execute(
            "SELECT reason, sum(count) FROM refusals GROUP BY reason").fetchall())
        return images, verdicts, integrity, reasons
    finally:
        conn.close()


@pytest.fixture
def data_dir(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    return folder


@pytest.mark.load
def test_storm_of_5000_mixed_deliveries(data_dir):
    rng = random.Random(5)
    secret, tasks = seed_catalogue(data_dir, 1000)
    valid = [delivery(t, secret) for t in tasks for _ in range(4)]          # 4000
    duplicates = [rng.choice(valid) for _ in range(500)]                    # 10 %
    forged = [delivery(rng.choice(tasks), secret, token=f"{rng.getrandbits(256):064x}")
              for _ in range(250)]                                          # 5 %
    malformed = []
    for i in range(250):                                                    # 5 %
        item = delivery(rng.choice(tasks), secret)
        item["body"] = [item["body"][:-7], '{"data": [{"seed": "x"}]}', "[]"][i % 3]
        malformed.append(item)
    storm = valid + duplicates + forged + malformed
    rng.shuffle(storm)

    service = GunicornService(data_dir, env={"RUNWARE_API_KEY": "storm"}).start()
    try:
        statuses = []

        def send(chunk):
            with requests.Session() as session:
                return [post(session, service.url, item).status_code for item in chunk]

        with ThreadPoolExecutor(8) as pool:
            for result in pool.map(send, [storm[i::8] for i in range(8)]):
                statuses += result
        log = service.log()
    finally:
        service.stop()

    assert not [s for s in statuses if s >= 500]
    assert statuses.count(200) == 4500
    assert statuses.count(403) == 250 and statuses.count(400) == 250
    images, verdicts, integrity, reasons = catalogue_counts(data_dir)
    assert sorted(images) == sorted(item["image"] for item in valid)
    assert verdicts == {"accepted": 4000, "duplicate": 500, "rejected": 500}
    assert sum(n for kind, n in reasons.items() if "invalid token" in kind) == 250
    with sqlite3.connect(data_dir / "catalogue.db") as conn:  # only a sample was kept
        kept = conn.execute("SELECT count(*) FROM deliveries WHERE verdict = 'rejected'"
                            ).fetchone()[0]
    assert kept <= len(reasons) * 10 < 500
    assert integrity == "ok"
    assert "token=" not in log and "POST /webhooks/runware/" in log


@pytest.mark.load
def test_kill_9_mid_storm_loses_nothing_acknowledged(data_dir):
    secret, tasks = seed_catalogue(data_dir, 500)
    items = [delivery(t, secret) for t in tasks for _ in range(4)]         # 2000
    random.Random(9).shuffle(items)
    service = GunicornService(data_dir, env={"RUNWARE_API_KEY": "crash"}).start()
    acknowledged, lock = set(), threading.Lock()
    killed = threading.Event()

    def send(chunk):
        with requests.Session() as session:
            for item in chunk:
                while True:  # a sender retries until it gets a 2xx, as Runware does
                    try:
                        if post(session, service.url, item, timeout=5).status_code == 200:
                            with lock:
                                acknowledged.add(item["image"])
                            break
                    except requests.RequestException:
                        pass
                    time.sleep(0.05)

    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(send, items[i::8]) for i in range(8)]
            while len(acknowledged) < 600:
                time.sleep(0.01)
            service.kill()
            killed.set()
            at_kill = len(acknowledged)
            service.start()
            for future in futures:
                future.result(timeout=120)
    finally:
        service.stop()

    assert killed.is_set() and 600 <= at_kill < 2000
    images, verdicts, integrity, _ = catalogue_counts(data_dir)
    assert integrity == "ok"
    assert len(images) == len(set(images)) == 2000
    assert acknowledged == set(images) == {item["image"] for item in items}


@pytest.mark.load
def test_a_lock_held_by_another_process_gives_503_then_recovers(data_dir):
    secret, tasks = seed_catalogue(data_dir, 2)
    service = GunicornService(data_dir, env={
        "RUNWARE_API_KEY": "lock", "RUNWARE_ARCHIVE_BUSY_TIMEOUT_MS": "300"}).start()
    holder = subprocess.Popen(
        ["python3", "-c",
         "import sqlite3, sys, time\n"
         f"c = sqlite3.connect({str(data_dir / 'catalogue.db')!r}, isolation_level=None)\n"
         "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); sys.stdin.readline()\n"
         "c.execute('ROLLBACK')"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        first = delivery(tasks[0], secret)
        refused = post(requests, service.url, first)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert requests.get(service.url + "/healthz", timeout=5).status_code == 503
        holder.communicate("go\n", timeout=10)
        assert post(requests, service.url, first).status_code == 200
        assert requests.get(service.url + "/healthz", timeout=5).status_code == 200
    finally:
        holder.kill()
        service.stop()
    images, _, integrity, _ = catalogue_counts(data_dir)
    assert images == [first["image"]] and integrity == "ok"


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs for the data folder (root only; CI runs as root)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_gives_503_and_nothing_half_written(small_disk, live_server_factory):
    data_dir = small_disk / "data"
    data_dir.mkdir()
    server = live_server_factory(data_dir)
    catalogue = server.app.extensions["catalogue"]
    secret = server.app.extensions["webhook_secret"]
    task = str(uuid.uuid4())
    catalogue.create_task({"task_uuid": task, "model": "m", "positive_prompt": "a harbor",
                           "params": {}, "provider": "runware", "number_results": 4})
    assert post(requests, server.url, delivery(task, secret)).status_code == 200
    catalogue.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    filler = small_disk / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    try:
        refused = post(requests, server.url, delivery(task, secret))
        assert refused.status_code == 503
    finally:
        filler.unlink()
    accepted = post(requests, server.url, delivery(task, secret))
    assert accepted.status_code == 200
    images, verdicts, integrity, _ = catalogue_counts(data_dir)
    assert len(images) == 2 and integrity == "ok"
    assert verdicts.get("accepted") == 2


@pytest.mark.load
def test_slow_connections_do_not_starve_real_deliveries(data_dir):
    secret, tasks = seed_catalogue(data_dir, 20)
    service = GunicornService(data_dir, env={"RUNWARE_API_KEY": "slow"}).start()
    slow = []
    try:
        for _ in range(200):  # slowloris: a request line and one header byte a second
            sock = socket.create_connection(("127.0.0.1", service.port))
            sock.sendall(b"POST /webhooks/runware/x?token=y HTTP/1.1\r\nHost: a\r\n")
            slow.append(sock)
        latencies = []
        with requests.Session() as session:
            for task in tasks:
                for sock in slow[:50]:
                    try:
                        sock.send(b"X")
                    except OSError:
                        pass
                started = time.monotonic()
                assert post(session, service.url, delivery(task, secret)).status_code == 200
                latencies.append(time.monotonic() - started)
        assert max(latencies) < 2.0, latencies
    finally:
        for sock in slow:
            sock.close()
        service.stop()
    images, _, _, _ = catalogue_counts(data_dir)
    assert len(images) == 20


@pytest.mark.load
def test_hostile_requests_get_4xx_never_5xx(data_dir):
    secret, tasks = seed_catalogue(data_dir, 1)
    task = tasks[0]
    service = GunicornService(data_dir, env={
        "RUNWARE_API_KEY": "hostile", "RUNWARE_ARCHIVE_MAX_DELIVERY_BYTES": "10000"}).start()
    url = f"{service.url}/webhooks/runware/{task}?token={make_token(task, secret=secret)}"
    try:
        big = b'{"data": [' + b" " * 20000 + b"]}"
        checks = [
            requests.post(url, data=big, headers={"Content-Type": "application/json"}),
            requests.post(url, data=iter([big[:5000], big[5000:]]),
                          headers={"Content-Type": "application/json"}),
            requests.get(url), requests.put(url, data=b"{}"), requests.delete(url),
            requests.post(url, data=b"{}", headers={"Content-Type": "text/xml"}),
            requests.post(url.split("?")[0] + "?token=" + "a" * 10_000, data=b"{}",
                          headers={"Content-Type": "application/json"}),
            requests.post(url, data=b"\xff\xfe\x00", headers={"Content-Type": "application/json"}),
        ]
        codes = [r.status_code for r in checks]
        # and a real delivery, chunked (no Content-Length), still goes through whole
        item = delivery(task, secret)
        body = item["body"].encode()
        valid = requests.post(url, data=iter([body[:40], body[40:]]),
                              headers={"Content-Type": "application/json"})
    finally:
        service.stop()
    assert codes[:2] == [413, 413]
    assert codes[2:5] == [405, 405, 405]
    # {} as text/xml: read as JSON whatever the type says, and refused for saying nothing
    assert codes[5] == 400 and codes[6] in (403, 414) and codes[7] == 400
    assert valid.status_code == 200, valid.text
    images, _, _, _ = catalogue_counts(data_dir)
    assert images == [item["image"]]


@pytest.mark.load
def test_sandbox_faults_on_200_tasks_of_4_all_archived_once(tmp_path):
    """Duplicates, reordering, dropped first attempts and 5xx on submit, through
    ``serve --workers 2`` with its fetcher process: all 800 images archived, none twice."""
    import os
    import signal
    import sys
    from pathlib import Path

    from tests.gunicorn_server import free_port

    port, data_dir = free_port(), tmp_path / "data"
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
           "RUNWARE_ARCHIVE_DIR": str(data_dir), "RUNWARE_ARCHIVE_ACCESS_LOG": "",
           "RUNWARE_ARCHIVE_SUBMIT_RETRIES": "6", "RUNWARE_ARCHIVE_SUBMIT_BACKOFF": "0.05",
           "RUNWARE_ARCHIVE_FETCH_CONCURRENCY": "4",
           "RUNWARE_SANDBOX_FAULTS": "duplicate=0.3,shuffle=1,drop_first=1,"
                                     "submit_status=503:0.3,submit_429=0.1,seed=3",
           "RUNWARE_SANDBOX_RESULT_DELAY": "0.02", "RUNWARE_SANDBOX_RETRY_BASE": "0.05",
           "RUNWARE_SANDBOX_RETRY_CAP": "0.5"}
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "runware-archive"), "serve", "--port", str(port),
         "--workers", "2"], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.1)

        def submit(i):
            response = requests.post(f"{base}/api/tasks", timeout=60, json={
                "positivePrompt": f"a lantern bazaar on sea ice, variation {i}",
                "numberResults": 4, "width": 256, "height": 256, "outputFormat": "WEBP"})
            return response.status_code, response.json()["taskUUID"]

        with ThreadPoolExecutor(4) as pool:
            submitted = list(pool.map(submit, range(200)))
        assert [code for code, _ in submitted] == [202] * 200
        conn = sqlite3.connect(f"file:{data_dir / 'catalogue.db'}?mode=ro", uri=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            archived = conn.execute(
                "SELECT count(*) FROM results WHERE archive_state = 'archived'").fetchone()[0]
            if archived >= 800:
                break
            time.sleep(0.5)
        rows = conn.execute("SELECT image_uuid, task_uuid, archive_state FROM results").fetchall()
        duplicates = conn.execute(
            "SELECT count(*) FROM deliveries WHERE verdict = 'duplicate'").fetchone()[0]
        conn.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()
    assert len(rows) == len({r[0] for r in rows}) == 800
    assert {r[1] for r in rows} == {uuid for _, uuid in submitted}
    assert {r[2] for r in rows} == {"archived"}
    assert duplicates > 0  # the sandbox did send duplicates, and they were refused as such


@pytest.mark.load
def test_every_write_waits_without_stopping_the_worker_and_answers_503(data_dir):
    """Under gevent a write that waits in SQLite's busy handler stops every request of its
    worker. Writes wait in short sleeps instead: while another process holds the lock, a
    submission waits its budget and answers 503 JSON with Retry-After, and the same
    (single) worker keeps answering reads meanwhile."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    service = GunicornService(data_dir, port=port, workers=1, env={
        "RUNWARE_ARCHIVE_BUSY_TIMEOUT_MS": "2000", "RUNWARE_ARCHIVE_PUBLIC_URL": url,
        "RUNWARE_API_URL": f"{url}/sandbox/v1"}).start()
    holder = subprocess.Popen(
        ["python3", "-c",
         "import sqlite3, sys\n"
         f"c = sqlite3.connect({str(data_dir / 'catalogue.db')!r}, isolation_level=None)\n"
         "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); sys.stdin.readline()\n"
         "c.execute('ROLLBACK')"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    answered, stop = [], threading.Event()

    def read_meanwhile():
        with requests.Session() as session:
            while not stop.is_set():
                answered.append(session.get(service.url + "/api/tasks", timeout=5).status_code)

    try:
        assert holder.stdout.readline().strip() == "locked"
        reader = threading.Thread(target=read_meanwhile)
        reader.start()
        started = time.monotonic()
        refused = requests.post(service.url + "/api/tasks", timeout=15, json={
            "positivePrompt": "a lantern bazaar", "width": 256, "height": 256})
        waited = time.monotonic() - started
        stop.set()
        reader.join(10)
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "1"
        assert refused.json()["errors"][0]["code"] == "unavailable"
        assert 1.5 < waited < 10
        assert answered.count(200) >= 20, answered  # the worker kept serving reads
        holder.communicate("go\n", timeout=10)
        assert requests.post(service.url + "/api/tasks", timeout=15, json={
            "positivePrompt": "a lantern bazaar", "width": 256, "height": 256}
        ).status_code == 202
    finally:
        stop.set()
        holder.kill()
        service.stop()
