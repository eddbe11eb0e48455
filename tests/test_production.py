"""``runware-archive serve --workers 2``: gunicorn workers, the fetcher as its own process,
metrics shared across workers, and no token in the access log."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.gunicorn_server import free_port

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def wait_until(check, timeout=30, step=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except requests.RequestException:
            pass
        time.sleep(step)
    raise AssertionError("timed out")


def fetcher_processes(session):
    """The pids of ``runware-archive worker`` processes in the server's own session: a
    machine-wide ``pgrep -f`` also sees other checkouts' servers and other test runs."""
    return subprocess.run(["pgrep", "-s", str(session), "-f", "receiver.cli worker"],
                          capture_output=True, text=True).stdout.split()


@pytest.mark.load  # gunicorn, a fetcher process and a task through them: ~6 s
def test_serve_with_workers_runs_the_whole_loop(tmp_path):
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path),
           "RUNWARE_ARCHIVE_DIR": str(tmp_path / "data"),
           "RUNWARE_SANDBOX_RESULT_DELAY": "0.05", "RUNWARE_SANDBOX_RETRY_BASE": "0.05"}
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([str(BIN / "runware-archive"), "serve", "--port", str(port),
                             "--workers", "2"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(f"{base}/healthz", timeout=2).ok)
        created = requests.post(f"{base}/api/tasks", timeout=30, json={
            "positivePrompt": "a floating tea house in the fog", "numberResults": 4,
            "seed": 11})
        assert created.status_code == 202, created.text
        task = created.json()["taskUUID"]

        def archived():
            body = requests.get(f"{base}/api/tasks/{task}", timeout=5).json()
            return body if [r["archived"] for r in body["results"]] == [True] * 4 else None

        body = wait_until(archived, timeout=60)
        assert sorted(r["seed"] for r in body["results"]) == [11, 12, 13, 14]
        # start_new_session: the server and every process it starts are in a session
        # whose id is the server's pid.
        assert fetcher_processes(proc.pid), "the fetcher runs as its own process"
        metrics = requests.get(f"{base}/metrics", timeout=5).text
        families = {f.name: f for f in text_string_to_metric_families(metrics)}
        count = sum(s.value for s in families["runware_archive_ingest_seconds"].samples
                    if s.name.endswith("_count"))
        assert count == 4
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
        log.close()
    output = (tmp_path / "serve.log").read_text()
    assert "POST /webhooks/runware/" in output
    assert "token=" not in output
    assert not fetcher_processes(proc.pid)
