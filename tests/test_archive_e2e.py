"""End to end on the sandbox over real loopback HTTP: tasks with URL, base64Data and
dataURI outputs and with ``uploadEndpoint``; every result archived, served, downloadable
with its parameters inside; a lost webhook recovered by ``reconcile``; and ``serve`` as a
subprocess archiving on its own fetcher thread."""

import hashlib
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from PIL import Image

from archive.catalogue import Catalogue
from archive.uploads import match_pending
from receiver import config as settings
from receiver.worker import make_fetcher
from receiver.cli import main
from receiver.provider.reconcile import reconcile
from tests.imagehost import ImageHost, add_task, picture, status

BIN = Path(sys.executable).parent


def wait_until(predicate, timeout=15.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture
def app_config(app_config, request):
    config = dict(app_config, RUNWARE_ARCHIVE_UPLOADS="on", RUNWARE_SANDBOX_RESULT_DELAY=0.01,
                  RUNWARE_SANDBOX_RETRY_BASE=0.02, RUNWARE_SANDBOX_RETRY_CAP=0.1)
    if getattr(request, "param", None) == "lost":  # every webhook lost; the sandbox gives up
        config.update(RUNWARE_SANDBOX_FAULTS="drop_first=5", RUNWARE_SANDBOX_MAX_ATTEMPTS=2,
                      RUNWARE_ARCHIVE_UPLOADS="off")
    return config


def submit(url, **params):
    body = {"positivePrompt": "a copper aviary market canopy", "width": 256, "height": 192,
            "steps": 4, "CFGScale": 3.5, "scheduler": "Euler", "seed": 84065, **params}
    response = requests.post(f"{url}/api/tasks", json=body, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()["taskUUID"]


def archived(url, task_uuid):
    task = requests.get(f"{url}/api/tasks/{task_uuid}", timeout=5).json()
    if task["resultsReceived"] < task["numberResults"]:
        return None
    return task if all(r["archived"] for r in task["results"]) else None


CASES = [
    ({"outputType": "URL", "outputFormat": "JPG", "numberResults": 2, "ttl": 120}, "jpg"),
    ({"outputType": "URL", "outputFormat": "WEBP"}, "webp"),
    ({"outputType": "base64Data", "outputFormat": "PNG", "numberResults": 2}, "png"),
    ({"outputType": "dataURI", "outputFormat": "JPG"}, "jpg"),
]


def test_every_output_type_with_uploads_is_archived(live_server, fetcher):
    url, app = live_server.url, live_server.app
    tasks = {submit(url, **params): ext for params, ext in CASES}
    for task_uuid in tasks:
        assert wait_until(lambda: archived(url, task_uuid)), archived(url, task_uuid)
    catalogue = app.extensions["catalogue"]
    assert wait_until(lambda: catalogue.conn.execute(
        "SELECT count(*) FROM uploads").fetchone()[0] == 6)
    match_pending(catalogue)
    for task_uuid, ext in tasks.items():
        task = archived(url, task_uuid)
        for result in task["results"]:
            check_served(url, task, result, ext)
    rules = dict(catalogue.conn.execute(
        "SELECT matched_by, count(*) FROM uploads GROUP BY matched_by").fetchall())
    assert sum(rules.values()) == 6 and None not in rules, rules


def check_served(url, task, result, ext):
    assert result["file"] == f"/files/{result['sha256']}.{ext}"
    original = requests.get(url + result["file"], timeout=5)
    assert original.status_code == 200
    assert hashlib.sha256(original.content).hexdigest() == result["sha256"]
    assert original.headers["ETag"].strip('"') == result["sha256"]
    assert original.headers["X-Content-Type-Options"] == "nosniff"
    assert original.headers["Content-Type"] == {"jpg": "image/jpeg", "png": "image/png",
                                                "webp": "image/webp"}[ext]
    again = requests.get(url + result["file"], headers={"If-None-Match": f'"{result["sha256"]}"'},
                         timeout=5)
    assert again.status_code == 304
    thumb = requests.get(url + result["thumbnail"], timeout=5)
    assert thumb.headers["Content-Type"] == "image/webp"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 384
    download = requests.get(url + result["download"], timeout=5)
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert f"Seed: {result['seed']}" in embedded_text(download.content, ext)
    sidecar = requests.get(f"{url}{result['download']}.json", timeout=5).json()
    assert sidecar["taskUUID"] == task["taskUUID"] and sidecar["sha256"] == result["sha256"]
    assert "token" not in json.dumps(sidecar)


def embedded_text(data, ext):
    im = Image.open(io.BytesIO(data))
    if ext == "png":
        return im.info["parameters"]
    return im.getexif().get_ifd(0x8769)[0x9286][8:].decode("utf-16-be")


def test_a_download_of_a_task_sent_with_defaults_carries_the_defaults(live_server, fetcher):
    url = live_server.url
    response = requests.post(f"{url}/api/tasks", timeout=10, json={
        "positivePrompt": "a lighthouse on a basalt cliff", "width": 256, "height": 192})
    task_uuid = response.json()["taskUUID"]
    assert wait_until(lambda: archived(url, task_uuid))
    result = archived(url, task_uuid)["results"][0]
    text = embedded_text(requests.get(url + result["download"], timeout=5).content, "jpg")
    assert "Steps: 4, " in text and "CFG scale: 0, " in text and "Size: 256x192" in text
    sidecar = requests.get(f"{url}{result['download']}.json", timeout=5).json()
    assert "steps" not in sidecar["params"] and sidecar["defaults"]["steps"] == 4
    assert sidecar["defaults"]["outputFormat"] == "JPG" and "width" not in sidecar["defaults"]


def test_unknown_and_unarchived_images_are_not_served(live_server):
    url = live_server.url
    assert requests.get(f"{url}/files/{'0' * 64}.jpg", timeout=5).status_code == 404
    assert requests.get(f"{url}/files/..%2F..%2Fcatalogue.db.jpg", timeout=5).status_code == 404
    assert requests.get(f"{url}/thumbs/{'0' * 64}.webp", timeout=5).status_code == 404
    missing = "11111111-2222-4333-8444-555555555555"
    assert requests.get(f"{url}/download/{missing}", timeout=5).status_code == 404
    assert requests.get(f"{url}/download/{missing}.json", timeout=5).status_code == 404


@pytest.mark.parametrize("app_config", ["lost"], indirect=True)
def test_reconcile_asks_for_what_the_webhooks_lost(live_server, fetcher):
    url, app = live_server.url, live_server.app
    task_uuid = submit(url, numberResults=3, outputType="URL")
    sandbox = app.extensions["sandbox"]
    assert wait_until(lambda: len(sandbox.attempts()) >= 6)  # 3 results x 2 lost attempts
    assert requests.get(f"{url}/api/tasks/{task_uuid}", timeout=5).json()["resultsReceived"] == 0
    report = reconcile(app, after=0)
    assert report.asked == [task_uuid] and report.new_results == 3
    assert wait_until(lambda: archived(url, task_uuid))
    sources = {d["source"] for d in app.extensions["catalogue"].deliveries(task_uuid=task_uuid)}
    assert sources == {"getResponse"}
    assert reconcile(app, after=0).asked == []  # complete now: nothing to ask


@pytest.mark.parametrize("app_config", ["lost"], indirect=True)
def test_the_worker_reconciles_on_its_own(live_server):
    app = live_server.app
    app.config.update(RUNWARE_ARCHIVE_RECONCILE_AFTER=0.3, RUNWARE_ARCHIVE_RECONCILE_INTERVAL=0.2)
    fetcher = make_fetcher(app)  # with the periodic reconcile pass
    fetcher.poll_interval = 0.05
    stop = fetcher.start()
    try:
        task_uuid = submit(live_server.url, numberResults=2, outputType="URL")
        assert wait_until(lambda: archived(live_server.url, task_uuid))
    finally:
        stop.set()
    sources = {d["source"] for d in app.extensions["catalogue"].deliveries(task_uuid=task_uuid)}
    assert sources == {"getResponse"}


def test_serve_archives_on_its_own_fetcher_thread(tmp_path):
    if not (BIN / "runware-archive").exists():
        pytest.skip("run: .venv/bin/pip install -e '.[test]'")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path),
           "RUNWARE_ARCHIVE_DIR": str(tmp_path / "data"),
           "RUNWARE_SANDBOX_RESULT_DELAY": "0.01"}
    log = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([str(BIN / "runware-archive"), "serve", "--port", "0"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        server = tmp_path / "data" / "server.json"
        assert wait_until(lambda: server.exists() and server.stat().st_size, 20)
        url = json.loads(server.read_text())["url"]
        assert wait_until(lambda: _answers(url), 20), (tmp_path / "serve.log").read_text()
        task_uuid = submit(url, numberResults=2)
        assert wait_until(lambda: archived(url, task_uuid), 20), \
            (tmp_path / "serve.log").read_text()
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def _answers(url):
    try:
        return requests.get(f"{url}/api/tasks", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_worker_once_and_the_reconcile_report(tmp_path, monkeypatch, migrated_copy):
    for key in settings.DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    host = ImageHost({"/ok.png": picture("PNG"), "/gone.png": status(404)})
    folder = tmp_path / "data"
    catalogue = Catalogue(migrated_copy(folder / "catalogue.db"))
    catalogue.migrate()
    ok, gone, private = add_task(catalogue, [f"{host.url}/ok.png", f"{host.url}/gone.png",
                                             "http://10.0.0.1/x.jpg"])
    env = {"RUNWARE_ARCHIVE_DIR": str(folder), "RUNWARE_ARCHIVE_IMAGE_HOSTS": f"http://{host.netloc}"}
    runner = CliRunner()
    try:
        out = runner.invoke(main, ["worker", "--once"], env=env)
        assert out.exit_code == 0, out.output
        assert "fetched 3 images; asked the provider for 0 tasks" in out.output
        out = runner.invoke(main, ["reconcile"], env=env)
        assert f"not archived: image {gone} (failed): HTTP 404 Not Found" in out.output
        assert (f"not archived: image {private} (refused): refused: host 10.0.0.1:80 is not on"
                " the image host allowlist") in out.output
        assert ok not in out.output
        report = json.loads(runner.invoke(main, ["reconcile", "--json"], env=env).output)
        assert sorted(i["image_uuid"] for i in report["images"]) == sorted([gone, private])
        out = runner.invoke(main, ["reconcile", "--retry-failed"], env=env)
        assert "queued 2 failed downloads again" in out.output
        runner.invoke(main, ["worker", "--once"], env=env)
        assert host.gets["/gone.png"] == 2 and host.gets["/ok.png"] == 1
    finally:
        host.stop()
