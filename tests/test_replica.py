"""The catalogue off the machine, tested the hard way: deliveries acknowledged while
Litestream replicates to a bucket (moto's S3 server on loopback), /healthz saying the
replica has caught up, Litestream killed (-9, no goodbye sync) and the data folder deleted,
then ``runware-archive restore``: every delivery acknowledged before the replica caught up
is there and ``PRAGMA integrity_check`` is ok. One acknowledged while Litestream was down is
not: that is the window the README's ack promise names."""

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from archive import replica as replica_files
from receiver import replica
from tests.s3server import CREDENTIALS, bucket, keys, s3_endpoint  # noqa: F401 - fixtures
from tests.test_webhooks import make_task, result_for

BIN = Path(sys.executable).parent


@pytest.fixture
def app_config(app_config, s3_endpoint, bucket):
    return dict(app_config, RUNWARE_ARCHIVE_REPLICA=f"s3://{bucket}/backup",
                RUNWARE_ARCHIVE_S3_ENDPOINT=s3_endpoint)


def wait_until(predicate, timeout=30.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def caught_up(url, at_least):
    """The /healthz replica section once it holds transaction ``at_least`` with no lag."""
    copy = requests.get(f"{url}/healthz", timeout=10).json().get("replica", {})
    if copy.get("ok") and copy.get("lagSeconds") == 0 and copy.get("replicaTxid", 0) >= at_least:
        return copy
    return None


def local_txid(app):
    return replica_files.local_backlog(replica.catalogue_path(app.config), 0)[0]


@pytest.mark.load  # ~8 s: Litestream's syncs, a kill -9, a restore
def test_acknowledged_deliveries_survive_losing_the_data_folder(
        live_server, sender, tmp_path, s3_endpoint, bucket):
    app, url = live_server.app, live_server.url
    catalogue = app.extensions["catalogue"]
    log = open(tmp_path / "litestream.log", "wb")
    litestream = replica.start(app.config, log=log)
    try:
        acknowledged = []
        for round_ in range(3):  # deliveries spread over several syncs
            task = make_task(catalogue, number_results=10)
            for seed in range(10):
                result = result_for(task, seed=round_ * 10 + seed)
                assert sender.result(task, result).status_code == 200
                acknowledged.append(result["imageUUID"])
            time.sleep(0.5)
        assert wait_until(lambda: local_txid(app) > 0), (tmp_path / "litestream.log").read_text()
        # Litestream turns the WAL into LTX files once a second, so the local TXID read now
        # may not cover the last round yet. One more commit after reading it forces a newer
        # LTX file, and that one is written after every acknowledged delivery above.
        seen = local_txid(app)
        marker = make_task(catalogue, number_results=1)
        assert sender.result(marker, result_for(marker)).status_code == 200
        assert wait_until(lambda: local_txid(app) > seen), (tmp_path / "litestream.log").read_text()
        target_txid = local_txid(app)
        copy = wait_until(lambda: caught_up(url, target_txid))
        assert copy and copy["running"], (copy, (tmp_path / "litestream.log").read_text())
        assert keys(s3_endpoint, bucket, "backup/catalogue/")

        litestream.send_signal(signal.SIGKILL)  # the machine is gone: no final sync
        litestream.wait()
        late = make_task(catalogue, number_results=1)
        lost = result_for(late)
        assert sender.result(late, lost).status_code == 200  # acked, never replicated
        down = requests.get(f"{url}/healthz", timeout=10)
        assert down.status_code == 503 and down.json()["replica"]["running"] is False
    finally:
        replica.stop(litestream, app.config)
        log.close()
    folder = Path(app.config["RUNWARE_ARCHIVE_DIR"])
    live_server.stop()
    catalogue.close()
    shutil.rmtree(folder)

    restored = run_restore(folder, s3_endpoint, bucket)
    assert restored.returncode == 0, restored.stderr
    assert "integrity_check ok" in restored.stdout
    conn = sqlite3.connect(folder / "catalogue.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    present = {row[0] for row in conn.execute("SELECT image_uuid FROM results")}
    assert set(acknowledged) <= present
    assert lost["imageUUID"] not in present  # acked after the replica stopped: the window
    conn.close()


def run_restore(folder, endpoint, bucket_name, *extra):
    if not (BIN / "runware-archive").exists():
        pytest.skip("run: .venv/bin/pip install -e '.[test]'")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(folder.parent),
           "RUNWARE_ARCHIVE_DIR": str(folder), **CREDENTIALS,
           "RUNWARE_ARCHIVE_REPLICA": f"s3://{bucket_name}/backup",
           "RUNWARE_ARCHIVE_S3_ENDPOINT": endpoint}
    return subprocess.run([str(BIN / "runware-archive"), "restore", *extra], env=env,
                          capture_output=True, text=True, timeout=120)


def test_restore_refuses_to_replace_a_catalogue_or_restore_nothing(tmp_path, s3_endpoint,
                                                                   bucket, monkeypatch):
    from click.testing import CliRunner
    from receiver.cli import main

    monkeypatch.setenv("RUNWARE_ARCHIVE_REPLICA", f"s3://{bucket}/backup")
    monkeypatch.setenv("RUNWARE_ARCHIVE_S3_ENDPOINT", s3_endpoint)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "catalogue.db").write_bytes(b"mine")
    monkeypatch.setenv("RUNWARE_ARCHIVE_DIR", str(folder))
    refused = CliRunner().invoke(main, ["restore"])
    assert refused.exit_code == 1 and "exists" in refused.output
    assert (folder / "catalogue.db").read_bytes() == b"mine"
    monkeypatch.setenv("RUNWARE_ARCHIVE_DIR", str(tmp_path / "fresh"))
    empty = CliRunner().invoke(main, ["restore"])  # an empty replica
    assert empty.exit_code == 1 and "holds nothing" in empty.output
    assert not (tmp_path / "fresh" / "catalogue.db").exists()


def test_the_lag_is_the_age_of_the_oldest_change_not_in_the_replica(tmp_path):
    db = tmp_path / "catalogue.db"
    level0 = Path(replica_files.meta_folder(db)) / "ltx" / "0"
    level0.mkdir(parents=True)
    now = time.time()
    for txid, age in ((1, 30), (2, 20), (3, 5)):
        path = level0 / f"{txid:016x}-{txid:016x}.ltx"
        path.write_bytes(b"")
        os.utime(path, (now - age, now - age))
    assert replica_files.local_backlog(db, 3) == (3, 0.0)
    local, lag = replica_files.local_backlog(db, 1)
    assert local == 3 and 19 < lag < 22
    assert replica_files.local_backlog(db, 5)[0] == 5  # the replica ahead (a restore)


def test_litestream_config_names_the_bucket_and_never_a_secret(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")
    config = replica.load_settings({"RUNWARE_ARCHIVE_DIR": str(tmp_path),
                                    "RUNWARE_ARCHIVE_REPLICA": "s3://bkt/some/prefix",
                                    "RUNWARE_ARCHIVE_S3_ENDPOINT": "http://127.0.0.1:9"})
    path = replica.write_config(config)
    text = Path(path).read_text()
    assert '"bucket": "bkt"' in text and '"path": "some/prefix/catalogue"' in text
    assert '"force-path-style": true' in text and "s3cr3t" not in text
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    with pytest.raises(SystemExit, match="RUNWARE_ARCHIVE_REPLICA"):
        replica.target({"RUNWARE_ARCHIVE_REPLICA": "https://bkt/x"})
    assert replica.status({"RUNWARE_ARCHIVE_REPLICA": None}) is None


@pytest.mark.load  # ~5 s: serve as a subprocess
@pytest.mark.parametrize("workers", [0, 2])
def test_serve_starts_litestream_beside_it_and_stops_it_after(tmp_path, s3_endpoint, bucket,
                                                              workers):
    if not (BIN / "runware-archive").exists():
        pytest.skip("run: .venv/bin/pip install -e '.[test]'")
    folder = tmp_path / "data"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), **CREDENTIALS,
           "RUNWARE_ARCHIVE_DIR": str(folder), "RUNWARE_ARCHIVE_FETCHER": "off",
           "RUNWARE_ARCHIVE_REPLICA": f"s3://{bucket}/backup",
           "RUNWARE_ARCHIVE_S3_ENDPOINT": s3_endpoint}
    log = open(tmp_path / "serve.log", "wb")
    port = "0" if not workers else str(free_port())  # gunicorn needs a port of its own
    proc = subprocess.Popen([str(BIN / "runware-archive"), "serve", "--port", port,
                             "--workers", str(workers)], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    try:
        server, pid_file = folder / "server.json", folder / replica.PID_FILE
        assert wait_until(lambda: server.exists() and server.stat().st_size and pid_file.exists())
        url = json.loads(server.read_text())["url"]
        health = wait_until(lambda: _replica_health(url))
        assert health and health["running"], (tmp_path / "serve.log").read_text()
        pid = int(pid_file.read_text())
        assert wait_until(lambda: keys(s3_endpoint, bucket, "backup/catalogue/"))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        log.close()
    assert not pid_file.exists()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _replica_health(url):
    try:
        copy = requests.get(f"{url}/healthz", timeout=5).json().get("replica")
    except requests.RequestException:
        return None
    return copy if copy and copy["running"] else None
