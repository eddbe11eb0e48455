"""End to end over real HTTP: the installed ``runware-archive`` started as a subprocess on a free
port, with an empty data folder and no ``RUNWARE_*`` environment, its sandbox as the provider.

The fault run switches on every fault that leaves the result count intact (duplicates,
shuffling, delays, dropped first attempts, 429/503 on submit, lost replies, wrapped bodies) and
then checks the catalogue itself, opened read-only, against the sandbox's own attempt log.
``fail`` removes results by design, so it has its own, smaller run.
"""

import os
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from protocol.schemas import MODEL_ID
from receiver.provider.client import ProviderClient

BIN = Path(sys.executable).parent
FAST = {"RUNWARE_ARCHIVE_SUBMIT_RETRIES": "5", "RUNWARE_ARCHIVE_SUBMIT_BACKOFF": "0.05",
        "RUNWARE_SANDBOX_RESULT_DELAY": "0.02", "RUNWARE_SANDBOX_RETRY_BASE": "0.02",
        "RUNWARE_SANDBOX_RETRY_CAP": "0.2"}
ALL_FAULTS = ("duplicate=0.3,shuffle=1,delay=0.1,drop_first=2,submit_status=503:0.5,"
              "submit_429=0.2,reply_lost=0.2,wrapped=0.5,seed=42")

pytestmark = pytest.mark.skipif(not (BIN / "runware-archive").exists(),
                                reason="run: .venv/bin/pip install -e '.[test]'")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class Process:
    """A command run with only PATH and HOME (plus ``env``), logging to a file, until stopped;
    ``{port}`` in its arguments and environment becomes a free port."""

    def __init__(self, tmp_path, args, env=None, ready_path="/api/tasks"):
        self.cwd = tmp_path / "run"
        self.cwd.mkdir(exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "process.log"
        clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
        assert not any(key.startswith("RUNWARE_") for key in clean)
        env = {key: value.replace("{port}", str(self.port)) for key, value in (env or {}).items()}
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(a).replace("{port}", str(self.port)) for a in args], cwd=self.cwd,
                env={**clean, **env}, stdout=log, stderr=subprocess.STDOUT)
        if not wait_until(lambda: self._answers(ready_path), 20):
            self.stop()
            raise AssertionError(f"not answering:\n{self.log.read_text()}")

    def _answers(self, path):
        assert self.proc.poll() is None, self.log.read_text()
        try:
            return requests.get(self.url + path, timeout=2).status_code < 500
        except requests.RequestException:  # not listening yet, or still booting
            return False

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def start(tmp_path):
    started = []

    def run(args, env=None, ready_path="/api/tasks"):
        started.append(Process(tmp_path, args, env, ready_path))
        return started[-1]

    yield run
    for process in started:
        process.stop()


def serve(start, env=None):
    return start([BIN / "runware-archive", "serve", "--port", "{port}"], env)


def submit(service, **params):
    reply = requests.post(f"{service.url}/api/tasks", json=params, timeout=60)
    assert reply.status_code == 202, reply.text
    return reply.json()["taskUUID"]


def task(service, task_uuid):
    return requests.get(f"{service.url}/api/tasks/{task_uuid}", timeout=10).json()


def read_only(path):
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def test_a_fresh_machine_runs_the_whole_loop(start):
    service = serve(start)
    data = service.cwd / "runware-archive-data"
    task_uuid = submit(service, positivePrompt="a glasshouse tea train platform",
                       numberResults=4)
    started = time.monotonic()
    assert wait_until(lambda: task(service, task_uuid)["resultsReceived"] == 4, 10)
    print(f"4 results stored {time.monotonic() - started:.2f}s after the 202")
    stored = task(service, task_uuid)
    assert stored["status"] == "complete"
    assert stored["provider"] == "sandbox" and stored["sandbox"] is True
    assert stored["cost"] == pytest.approx(4 * 0.0006)
    results = stored["results"]
    assert len({r["imageUUID"] for r in results}) == 4 and len({r["seed"] for r in results}) == 4
    for result in results:
        assert result["imageURL"].startswith(f"{service.url}/sandbox/v1/images/")
        image = requests.get(result["imageURL"], timeout=10)
        assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"
    assert (data / "catalogue.db").exists() and (data / "sandbox.db").exists()
    assert "token=" not in service.log.read_text().replace("token=[redacted]", "")


@pytest.mark.load
def test_every_fault_on_50_tasks_of_4_results_store_exactly_200(start):
    service = serve(start, {**FAST, "RUNWARE_SANDBOX_FAULTS": ALL_FAULTS})
    data = service.cwd / "runware-archive-data"
    with ThreadPoolExecutor(8) as pool:
        uuids = list(pool.map(lambda n: submit(
            service, positivePrompt=f"fault run task {n}", numberResults=4, seed=1000 * n),
            range(50)))
    assert len(set(uuids)) == 50

    def complete():
        return all(t["resultsReceived"] == 4 for t in requests.get(
            f"{service.url}/api/tasks?limit=200", timeout=10).json()["tasks"])

    assert wait_until(complete, 40, 0.25)
    image_uuids = []
    for task_uuid in uuids:
        stored = task(service, task_uuid)
        assert stored["status"] == "complete" and stored["sandbox"] is True
        assert len(stored["results"]) == 4
        image_uuids += [r["imageUUID"] for r in stored["results"]]
    assert len(image_uuids) == len(set(image_uuids)) == 200

    time.sleep(0.5)  # let the last duplicates land
    with read_only(data / "catalogue.db") as catalogue:
        assert catalogue.execute("SELECT count(*), count(DISTINCT image_uuid) FROM results"
                                 ).fetchone() == (200, 200)
        assert catalogue.execute("SELECT count(*) FROM tasks WHERE results_received = 4"
                                 " AND status = 'complete'").fetchone() == (50,)
        verdicts = dict(catalogue.execute(
            "SELECT verdict, count(*) FROM deliveries WHERE source = 'webhook'"
            " GROUP BY verdict").fetchall())
        # A lost reply is followed by conflictTaskUUID and a getResponse that may already
        # bring some results: each image is new exactly once, whichever way it came.
        new_by_source = dict(catalogue.execute(
            "SELECT source, sum(results_new) FROM deliveries GROUP BY source").fetchall())
    with read_only(data / "sandbox.db") as sandbox:
        answered = dict(sandbox.execute(
            "SELECT kind, count(*) FROM attempts WHERE status_code BETWEEN 200 AND 299"
            " GROUP BY kind").fetchall())
        refused = sandbox.execute("SELECT count(*) FROM attempts WHERE status_code >= 300"
                                  ).fetchone()[0]
        dropped = sandbox.execute("SELECT count(*) FROM attempts WHERE error LIKE 'dropped%'"
                                  ).fetchone()[0]
        undelivered = sandbox.execute("SELECT count(*) FROM items WHERE webhook != 'delivered'"
                                      ).fetchone()[0]
        lost_replies = sandbox.execute("SELECT coalesce(sum(count), 0) FROM submit_faults"
                                       ).fetchone()[0]
    print(f"deliveries {verdicts}, new by source {new_by_source}; sandbox 2xx {answered}, non-2xx {refused}, dropped "
          f"{dropped}, submit faults {lost_replies}")
    assert undelivered == 0 and dropped == 200 * 2 and lost_replies > 0
    assert sum(new_by_source.values()) == 200
    assert verdicts.get("accepted") == new_by_source["webhook"]
    assert answered["duplicate"] > 0
    # Every delivery the receiver acknowledged is in its log, once: the new results and
    # each duplicate (the sandbox's deliberate ones, any retry of a stored one, and the
    # webhooks of images a getResponse had brought first).
    assert verdicts.get("duplicate", 0) == sum(answered.values()) - verdicts["accepted"]
    assert verdicts.get("rejected", 0) == refused == 0


def test_failed_generations_are_recorded_as_errors(start):
    service = serve(start, {**FAST, "RUNWARE_SANDBOX_FAULTS": "fail=0.5,seed=7"})
    uuids = [submit(service, positivePrompt=f"fail run {n}", numberResults=4)
             for n in range(5)]

    def settled(task_uuid):
        with read_only(service.cwd / "runware-archive-data" / "catalogue.db") as db:
            received, errors = db.execute(
                "SELECT results_received, errors_received FROM tasks WHERE task_uuid = ?",
                (task_uuid,)).fetchone()
        return received + errors == 4

    assert wait_until(lambda: all(settled(u) for u in uuids), 20)
    stored = [task(service, u) for u in uuids]
    failed = [t for t in stored if t["resultsReceived"] < 4]
    assert failed and all(t["status"] == "error" for t in failed)
    assert all(t["errorCode"] == "timeoutProvider" for t in failed)
    assert all(t["status"] == "complete" for t in stored if t not in failed)


def test_the_sandbox_alone_serves_our_client(start, tmp_path):
    folder = tmp_path / "sandbox-state"
    sandbox = start([BIN / "runware-archive", "sandbox", "--port", "{port}", "--data-dir",
                     folder], ready_path="/sandbox/v1/images/none.jpg")
    stranger = ProviderClient(f"{sandbox.url}/sandbox/v1", "any-key", timeout=30, retries=0)
    key = (folder / "sandbox-key").read_text().strip()
    client = ProviderClient(f"{sandbox.url}/sandbox/v1", key, timeout=30, retries=0)
    task_uuid = str(uuid.uuid4())
    assert stranger.post([{"taskType": "imageInference", "taskUUID": task_uuid}]).status == 401
    rebound = requests.post(f"{sandbox.url}/sandbox/v1", json=[], timeout=10,
                            headers={"Host": "evil.example", "Authorization": f"Bearer {key}"})
    assert rebound.status_code == 400  # the same Host check as the archive's
    status, body = client.post([{
        "taskType": "imageInference", "taskUUID": task_uuid, "model": MODEL_ID,
        "positivePrompt": "a standalone sandbox", "width": 256, "height": 256,
        "numberResults": 2, "includeCost": True, "outputType": "dataURI"}])
    assert status == 200 and len(body["data"]) == 2
    assert all(item["imageDataURI"].startswith("data:image/jpeg;base64,")
               for item in body["data"])
    assert (folder / "sandbox.db").exists()
    assert f"RUNWARE_SANDBOX_DIR={folder}" in sandbox.log.read_text()


@pytest.mark.load
def test_several_gunicorn_workers_share_the_sandbox(start, tmp_path):
    url = "http://127.0.0.1:{port}"
    env = {**FAST, "RUNWARE_ARCHIVE_BIND": "127.0.0.1:{port}", "RUNWARE_ARCHIVE_WORKERS": "3",
           "RUNWARE_ARCHIVE_DIR": str(tmp_path / "data"), "RUNWARE_ARCHIVE_PUBLIC_URL": url,
           "RUNWARE_API_URL": f"{url}/sandbox/v1"}
    root = Path(__file__).resolve().parents[1]
    service = start([BIN / "gunicorn", "-c", root / "gunicorn.conf.py", "--chdir", root,
                     "receiver:create_app()"], env)
    uuids = [submit(service, positivePrompt=f"gunicorn {n}", numberResults=4) for n in range(10)]
    assert wait_until(lambda: all(task(service, u)["resultsReceived"] == 4 for u in uuids), 20)
    assert service.log.read_text().count("Booting worker") == 3
    polls = []
    key = (tmp_path / "data" / "sandbox-key").read_text().strip()
    for _ in range(12):
        with requests.Session() as fresh:  # a new connection, so any worker may answer
            reply = fresh.post(f"{service.url}/sandbox/v1",
                               headers={"Authorization": f"Bearer {key}"},
                               json=[{"taskType": "getResponse", "taskUUID": uuids[0]}],
                               timeout=10)
        polls.append(reply.json())
    assert all(poll == polls[0] for poll in polls)
    stored = {r["imageUUID"] for r in task(service, uuids[0])["results"]}
    assert {item["imageUUID"] for item in polls[0]["data"]} == stored
