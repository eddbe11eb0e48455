"""A ``/v1`` client's own ``webhookURL``, relayed over real loopback HTTP: every stored
result reaches it once, after it is in the catalogue, in arrival order, retried with
backoff and logged; a URL its key does not allow is never called and the ack says why;
the relay queue outlives a restart."""

import hashlib
import json
import sqlite3
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from archive import keys, relay
from protocol.schemas import MODEL_ID
from receiver import config as settings
from receiver import create_app
from receiver.cli import main
from receiver.worker import relay_results

TASK = {"taskType": "imageInference", "model": MODEL_ID, "width": 512, "height": 384,
        "positivePrompt": "a tidal library atrium interior", "deliveryMethod": "async"}


class Hook:
    """A client's webhook on loopback: records each request with the image UUIDs the
    catalogue held when it came, and answers from ``statuses`` (then 200)."""

    def __init__(self, db=None, statuses=()):
        self.received, self.uploads, self.statuses, hook = [], [], list(statuses), self
        self.order = []  # ("PUT" | "POST", path) as they came

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stored = hook.stored(body.get("taskUUID"))
                hook.received.append({"path": self.path, "body": body, "stored": stored,
                                      "headers": dict(self.headers)})
                hook.order.append(("POST", body.get("imageUUID")))
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_PUT(self):
                data = self.rfile.read(int(self.headers["Content-Length"]))
                hook.uploads.append({"path": self.path, "data": data,
                                     "type": self.headers["Content-Type"]})
                hook.order.append(("PUT", hashlib.sha256(data).hexdigest()))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.db = db
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True).start()

    def stored(self, task_uuid):
        if self.db is None:
            return None
        with sqlite3.connect(self.db) as conn:
            return {row[0] for row in conn.execute(
                "SELECT image_uuid FROM results WHERE task_uuid = ?", (task_uuid,))}

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app_config(app_config, request):
    return dict(app_config, RUNWARE_SANDBOX_RESULT_DELAY=0.05,
                RUNWARE_ARCHIVE_RELAY_BACKOFF=0.05, **getattr(request, "param", {}))


@pytest.fixture
def hooks(app):
    made = []

    def make(statuses=()):
        made.append(Hook(Path(app.config["RUNWARE_ARCHIVE_DIR"]) / "catalogue.db", statuses))
        return made[-1]

    yield make
    for hook in made:
        hook.stop()


def send(live_server, secret, webhook_url, **task):
    task_uuid = str(uuid.uuid4())
    answer = requests.post(live_server.url + "/v1", headers={
        "Authorization": f"Bearer {secret}"}, json=[{**TASK, "taskUUID": task_uuid,
                                                     "webhookURL": webhook_url, **task}],
        timeout=20)
    assert answer.status_code == 200, answer.text
    return task_uuid, answer.json()["data"]


def until(condition, app=None, timeout=15.0):
    """Wait for ``condition()``, running relay passes of ``app`` meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        if app is not None:
            relay_results(app)
        time.sleep(0.02)


def complete(app, task_uuid):
    return lambda: app.extensions["catalogue"].get_task(task_uuid)["status"] == "complete"


def log_of(app, task_uuid):
    return [d for d in reversed(app.extensions["catalogue"].deliveries(task_uuid=task_uuid))
            if d["source"] == "relay"]


def test_every_result_reaches_the_clients_webhook_once_after_it_is_stored(
        app, live_server, hooks):
    hook = hooks()
    row, secret = keys.create(app.extensions["catalogue"], "notebook",
                              relay_hosts=[hook.origin])
    stop = threading.Event()

    def worker():  # two workers at once: the lease keeps each result to one of them
        while not stop.is_set():
            relay_results(app)
            time.sleep(0.01)

    workers = [threading.Thread(target=worker) for _ in range(2)]
    for thread in workers:
        thread.start()
    try:
        task_uuid, ack = send(live_server, secret, hook.origin + "/hook?mine=1",
                              numberResults=3, seed=5)
        assert ack == [{"taskType": "imageInference", "taskUUID": task_uuid}]
        until(lambda: len(hook.received) >= 3)
        time.sleep(0.3)  # and nothing more comes
    finally:
        stop.set()
        for thread in workers:
            thread.join(10)
    task = app.extensions["catalogue"].get_task(task_uuid)
    arrived = [r["image_uuid"] for r in sorted(task["results"],
                                               key=lambda r: (r["received_at"], r["id"]))]
    assert [r["body"]["imageUUID"] for r in hook.received] == arrived
    for got, result in zip(hook.received, task["results"]):
        assert got["path"] == "/hook?mine=1" and got["body"]["imageUUID"] in got["stored"]
    by_uuid = {r["image_uuid"]: r for r in task["results"]}
    for got in hook.received:
        stored = by_uuid[got["body"]["imageUUID"]]
        assert got["body"] == {"taskType": "imageInference", "taskUUID": task_uuid,
                               "imageUUID": stored["image_uuid"],
                               "imageURL": stored["image_url"], "seed": stored["seed"],
                               "cost": stored["cost"]}
        assert secret not in json.dumps([got["body"], got["headers"]])
    assert webhook_sent_upstream(app, task_uuid) != hook.origin + "/hook?mine=1"
    assert [d["status_code"] for d in log_of(app, task_uuid)] == [200, 200, 200]


def webhook_sent_upstream(app, task_uuid):
    return app.extensions["sandbox"].task(task_uuid).task["webhookURL"]


def test_a_url_the_key_does_not_allow_is_never_called(app, live_server, hooks):
    allowed, other = hooks(), hooks()
    catalogue = app.extensions["catalogue"]
    _, secret = keys.create(catalogue, "notebook", relay_hosts=[allowed.origin])
    _, bare = keys.create(catalogue, "no relays")
    refused = {}
    for name, key, url in [("port", secret, other.origin + "/hook"),
                           ("name", secret, allowed.origin.replace("127.0.0.1", "localhost")),
                           ("no hosts", bare, allowed.origin + "/hook")]:
        task_uuid, ack = send(live_server, key, url)
        assert ack[0]["taskUUID"] == task_uuid and set(ack[0]) == {
            "taskType", "taskUUID", "relay"}
        refused[name] = ack[0]["relay"]["webhookURL"]
        until(complete(app, task_uuid))  # archived all the same
    assert refused["port"].startswith("refused: ") and \
        "not on the client key's relay hosts" in refused["port"]
    assert "no relay hosts" in refused["no hosts"]
    for _ in range(3):
        relay_results(app)
    assert other.received == [] and allowed.received == []


def test_a_name_for_loopback_is_refused_at_the_send(app, live_server, hooks):
    """A host that is a name, not the very IP literal, must resolve to a public address."""
    hook = hooks()
    named = hook.origin.replace("127.0.0.1", "localhost")
    _, secret = keys.create(app.extensions["catalogue"], "notebook", relay_hosts=[named])
    task_uuid, ack = send(live_server, secret, named + "/hook")
    assert "relay" not in ack[0]
    until(complete(app, task_uuid))
    relay_results(app)
    assert hook.received == []
    [attempt] = log_of(app, task_uuid)
    assert attempt["verdict"] == "relay-failed" and "loopback" in attempt["reason"]
    assert relay.queue(app.extensions["catalogue"].conn, task_uuid)[0]["state"] == "dead"


def test_a_failing_webhook_gets_the_result_on_the_third_attempt(app, live_server, hooks):
    hook = hooks(statuses=[500, 500])
    _, secret = keys.create(app.extensions["catalogue"], "notebook",
                            relay_hosts=[hook.origin])
    task_uuid, _ = send(live_server, secret, hook.origin + "/hook")
    until(complete(app, task_uuid))
    started = time.monotonic()
    until(lambda: len(hook.received) == 3, app)
    assert time.monotonic() - started >= 0.8 * (0.05 + 0.1)  # backed off, doubling
    assert hook.received[0]["body"] == hook.received[2]["body"]
    attempts = log_of(app, task_uuid)
    assert [(a["status_code"], a["verdict"]) for a in attempts] == [
        (500, "relay-failed"), (500, "relay-failed"), (200, "relayed")]
    assert "HTTP 500" in attempts[0]["reason"]
    [queued] = relay.queue(app.extensions["catalogue"].conn, task_uuid)
    assert (queued["state"], queued["attempts"]) == ("delivered", 3)


def test_attempts_are_bounded(app, live_server, hooks):
    app.config["RUNWARE_ARCHIVE_RELAY_ATTEMPTS"] = 3
    hook = hooks(statuses=[503] * 10)
    _, secret = keys.create(app.extensions["catalogue"], "notebook",
                            relay_hosts=[hook.origin])
    task_uuid, _ = send(live_server, secret, hook.origin + "/hook")
    until(complete(app, task_uuid))
    queue = app.extensions["catalogue"].conn
    until(lambda: [q["state"] for q in relay.queue(queue, task_uuid)] == ["dead"], app)
    attempts = log_of(app, task_uuid)
    assert len(hook.received) == 3, attempts
    assert "gave up after 3" in attempts[-1]["reason"]


def test_the_queue_survives_a_restart(app, app_config, live_server, hooks):
    hook = hooks()
    _, secret = keys.create(app.extensions["catalogue"], "notebook",
                            relay_hosts=[hook.origin])
    task_uuid, _ = send(live_server, secret, hook.origin + "/hook", numberResults=2)
    until(complete(app, task_uuid))
    relay.sweep(app.extensions["catalogue"], lambda kind, uuid_, row: {"queued": "before"})
    live_server.stop()  # the service stops before anything was sent
    assert hook.received == []
    again = create_app(app_config)
    until(lambda: len(hook.received) == 2, again)
    assert [r["body"] for r in hook.received] == [{"queued": "before"}] * 2


def test_the_cli_keeps_a_keys_relay_hosts(data_dir, monkeypatch):
    for name in settings.DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNWARE_ARCHIVE_DIR", str(data_dir))
    runner = CliRunner()
    made = runner.invoke(main, ["keys", "create", "--label", "hooks", "--relay-host",
                                "https://Hooks.example.org", "--relay-host",
                                "http://127.0.0.1:8123"])
    assert made.exit_code == 0, made.output
    assert "https://hooks.example.org" in made.output
    listed = runner.invoke(main, ["keys", "list"]).output
    assert "http://127.0.0.1:8123 https://hooks.example.org" in listed
    bad = runner.invoke(main, ["keys", "create", "--label", "x", "--relay-host",
                               "https://hooks.example.org/path"])
    assert bad.exit_code != 0 and "--relay-host" in bad.output


@pytest.mark.parametrize("app_config", [{"RUNWARE_SANDBOX_FAULTS": "fail=1"}], indirect=True)
def test_a_failed_image_is_relayed_as_runware_sends_it(app, live_server, hooks):
    hook = hooks()
    _, secret = keys.create(app.extensions["catalogue"], "notebook",
                            relay_hosts=[hook.origin])
    task_uuid, _ = send(live_server, secret, hook.origin + "/hook")
    until(lambda: app.extensions["catalogue"].get_task(task_uuid)["failures"])
    until(lambda: hook.received, app)
    [failure] = app.extensions["catalogue"].get_task(task_uuid)["failures"]
    body = hook.received[0]["body"]
    assert (body["status"], body["taskUUID"], body["imageUUID"]) == (
        "error", task_uuid, failure["image_uuid"])
    assert body["error"]["code"] == failure["code"]


def test_an_upload_endpoint_gets_each_archived_image_before_its_webhook(
        app, live_server, hooks, fetcher):
    hook = hooks()
    _, secret = keys.create(app.extensions["catalogue"], "notebook",
                            relay_hosts=[hook.origin])
    task_uuid, ack = send(live_server, secret, hook.origin + "/hook", numberResults=2,
                          uploadEndpoint=hook.origin + "/upload/mine")
    assert ack == [{"taskType": "imageInference", "taskUUID": task_uuid}]
    assert "uploadEndpoint" not in webhook_sent_upstream_task(app, task_uuid)
    until(lambda: len(hook.received) == 2, app)
    results = {r["image_uuid"]: r for r in app.extensions["catalogue"].get_task(
        task_uuid)["results"]}
    assert all(r["archive_state"] == "archived" for r in results.values())
    assert [u["path"] for u in hook.uploads] == ["/upload/mine"] * 2
    for got in hook.received:  # each image PUT (its archived bytes) before its webhook
        sha = results[got["body"]["imageUUID"]]["sha256"]
        assert hook.order.index(("PUT", sha)) < hook.order.index(
            ("POST", got["body"]["imageUUID"]))
    assert all(u["type"].startswith("image/") for u in hook.uploads)


def test_an_upload_endpoint_the_key_does_not_allow_is_refused_in_the_ack(
        app, live_server, hooks):
    hook, other = hooks(), hooks()
    _, secret = keys.create(app.extensions["catalogue"], "notebook",
                            relay_hosts=[hook.origin])
    task_uuid, ack = send(live_server, secret, hook.origin + "/hook",
                          uploadEndpoint=other.origin + "/upload")
    assert set(ack[0]["relay"]) == {"uploadEndpoint"}
    assert ack[0]["relay"]["uploadEndpoint"].startswith("refused: ")
    until(complete(app, task_uuid))
    until(lambda: len(hook.received) == 1, app)  # the allowed webhook still gets it
    assert other.uploads == [] and hook.uploads == []


def webhook_sent_upstream_task(app, task_uuid):
    return app.extensions["sandbox"].task(task_uuid).task


def test_a_sync_task_with_a_webhook_is_acknowledged_at_once(app, live_server, hooks):
    hook = hooks()
    _, secret = keys.create(app.extensions["catalogue"], "notebook",
                            relay_hosts=[hook.origin])
    task_uuid, ack = send(live_server, secret, hook.origin + "/hook", deliveryMethod="sync")
    assert ack == [{"taskType": "imageInference", "taskUUID": task_uuid}]
    until(lambda: len(hook.received) == 1, app)


def test_a_revoked_keys_relays_stop(app, live_server, hooks):
    hook = hooks()
    row, secret = keys.create(app.extensions["catalogue"], "notebook",
                              relay_hosts=[hook.origin])
    task_uuid, _ = send(live_server, secret, hook.origin + "/hook")
    until(complete(app, task_uuid))
    keys.revoke(app.extensions["catalogue"], row["id"])
    relay_results(app)
    assert hook.received == []
    assert "revoked" in log_of(app, task_uuid)[0]["reason"]
