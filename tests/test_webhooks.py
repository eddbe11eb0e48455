"""The webhook receiver over real loopback HTTP: each check, its status code, the log."""

import json
import logging
import socket
import time
import uuid

import pytest
import requests

from tests.conftest import seed_examples


@pytest.fixture
def catalogue(app):
    return app.extensions["catalogue"]


def make_task(catalogue, number_results=2):
    task_uuid = str(uuid.uuid4())
    catalogue.create_task({
        "task_uuid": task_uuid, "model": "runware:twinflow-z-image-turbo@0",
        "positive_prompt": "a tidal library atrium", "params": {"taskUUID": task_uuid},
        "provider": "runware", "number_results": number_results, "status": "submitted",
    })
    return task_uuid


def result_for(task_uuid, seed=1, cost=0.0006):
    image = str(uuid.uuid4())
    return {"taskType": "imageInference", "taskUUID": task_uuid, "imageUUID": image,
            "imageURL": f"https://im.runware.ai/image/os/a14d18/ws/2/ii/{image}.jpg",
            "seed": seed, "cost": cost}


def rows(catalogue, sql, args=()):
    return catalogue.conn.execute(sql, args).fetchall()


def test_a_valid_delivery_is_stored_and_acknowledged(catalogue, sender):
    task = make_task(catalogue)
    response = sender.result(task, result_for(task, seed=22452))
    assert response.status_code == 200
    assert response.json()["verdict"] == "accepted"
    assert rows(catalogue, "SELECT seed FROM results WHERE task_uuid = ?", (task,)) == [(22452,)]
    assert catalogue.get_task(task)["status"] == "partial"


def test_all_three_shapes_are_accepted(catalogue, sender):
    task = make_task(catalogue, number_results=3)
    assert sender.result(task, result_for(task), envelope=True).status_code == 200
    assert sender.result(task, result_for(task), envelope=False).status_code == 200
    error = {"errors": [{"code": "timeoutProvider", "message": "slow", "taskUUID": task}]}
    assert sender.post(task, error).status_code == 200
    row = catalogue.get_task(task)
    assert row["results_received"] == 2 and row["error_code"] == "timeoutProvider"


def test_the_seed_examples_arrive_as_runware_sent_them(catalogue, sender):
    for example in seed_examples():
        response = example["response"]
        catalogue.create_task({
            "task_uuid": response["taskUUID"], "model": example["request"]["model"],
            "positive_prompt": example["request"]["positivePrompt"],
            "params": example["request"], "provider": "runware", "number_results": 1,
        })
        assert sender.result(response["taskUUID"], response).status_code == 200
    got = rows(catalogue, "SELECT seed, cost FROM results ORDER BY id")
    assert got == [(e["response"]["seed"], e["response"]["cost"]) for e in seed_examples()]


def test_a_duplicate_is_acknowledged_and_stored_once(catalogue, sender):
    task = make_task(catalogue)
    item = result_for(task)
    assert sender.result(task, item).json()["verdict"] == "accepted"
    again = sender.result(task, item)
    assert again.status_code == 200 and again.json()["verdict"] == "duplicate"
    assert rows(catalogue, "SELECT count(*) FROM results") == [(1,)]


@pytest.mark.parametrize("token,status", [("", 401), ("0" * 64, 403), ("x" * 10_000, 403)])
def test_missing_or_wrong_tokens_are_refused_before_the_body_is_read(
        catalogue, sender, token, status):
    task = make_task(catalogue)
    response = sender.result(task, result_for(task), token=token)
    assert response.status_code == status
    assert response.json()["errors"][0]["message"]
    assert rows(catalogue, "SELECT count(*) FROM results") == [(0,)]
    logged = catalogue.deliveries(verdict="rejected")[0]
    assert logged["status_code"] == status and logged["body"] is None


def test_a_token_for_another_task_is_refused(catalogue, sender):
    mine, other = make_task(catalogue), make_task(catalogue)
    response = requests.post(
        sender.url(mine).replace(mine, other), json={"data": [result_for(other)]}, timeout=5)
    assert response.status_code == 403


@pytest.mark.parametrize("body,headers,status,reason", [
    (b"{not json", None, 400, "malformed JSON"),
    (b'{"data": [{"taskUUID": "x", "imageURL": "https://im.runware.ai/x.jpg"}]}', None, 400,
     "invalid payload"),
    (b'{"data": []}', None, 400, "invalid payload"),
    (b"[1, 2]", None, 400, "invalid payload"),
    (b'{"data": []}', {"Content-Type": "text/plain"}, 400, "invalid payload"),
    (b"not json at all", {"Content-Type": ""}, 400, "malformed JSON"),
])
def test_bad_bodies_are_refused_and_logged(catalogue, sender, body, headers, status, reason):
    task = make_task(catalogue)
    response = sender.post(task, None, raw=body, headers=headers)
    assert response.status_code == status, response.text
    logged = catalogue.deliveries(verdict="rejected")[0]
    assert logged["status_code"] == status and reason in logged["reason"]
    assert logged["body"] == body.decode()


def test_schema_errors_name_the_field(catalogue, sender):
    task = make_task(catalogue)
    item = result_for(task)
    item["seed"] = "seven"
    errors = sender.result(task, item).json()["errors"]
    assert any(e["parameter"] == "data[0].seed" for e in errors)


def test_a_result_of_another_task_is_refused(catalogue, sender):
    mine, other = make_task(catalogue), make_task(catalogue)
    response = sender.post(mine, {"data": [result_for(mine), result_for(other)]})
    assert response.status_code == 409
    assert rows(catalogue, "SELECT count(*) FROM results") == [(0,)]


def test_an_unknown_task_with_a_valid_token_is_404(catalogue, sender):
    ghost = str(uuid.uuid4())
    assert sender.result(ghost, result_for(ghost)).status_code == 404


def test_oversized_bodies_are_refused_with_and_without_content_length(app, catalogue, sender):
    app.config["RUNWARE_ARCHIVE_MAX_DELIVERY_BYTES"] = 1000
    task = make_task(catalogue)
    big = json.dumps({"data": [dict(result_for(task), pad="x" * 5000)]}).encode()
    assert sender.post(task, None, raw=big).status_code == 413

    def chunks():
        for i in range(0, len(big), 500):
            yield big[i:i + 500]

    chunked = requests.post(sender.url(task), data=chunks(), timeout=10,
                            headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413
    assert rows(catalogue, "SELECT count(*) FROM results") == [(0,)]
    assert [d["status_code"] for d in catalogue.deliveries(verdict="rejected")] == [413, 413]


def test_a_chunked_delivery_under_the_cap_is_read_whole(catalogue, sender):
    task = make_task(catalogue)
    item = result_for(task, seed=31337)
    body = json.dumps({"data": [item]}).encode()
    response = requests.post(sender.url(task), data=iter([body[:30], body[30:]]), timeout=10,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert rows(catalogue, "SELECT image_uuid, seed FROM results") == [(item["imageUUID"], 31337)]


def test_wrong_method_is_405(catalogue, sender):
    task = make_task(catalogue)
    response = requests.get(sender.url(task), timeout=5)
    assert response.status_code == 405
    assert response.headers["Allow"] == "OPTIONS, POST"
    assert response.json()["errors"][0]["code"] == "methodNotAllowed"
    options = requests.options(sender.url(task), timeout=5)
    assert options.status_code == 200 and "POST" in options.headers["Allow"]
    assert rows(catalogue, "SELECT count(*) FROM deliveries") == [(0,)]


def test_webhook_answers_carry_the_security_headers(catalogue, sender):
    """The route is answered in front of Flask: it must still say what every page says."""
    task = make_task(catalogue)
    accepted = sender.result(task, result_for(task))
    refused = requests.post(sender.url(task).split("?")[0], json={}, timeout=5)
    for response in (accepted, refused):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Content-Type"] == "application/json"
    assert refused.status_code == 401


def test_paths_beyond_the_route_are_flasks_404(catalogue, sender):
    task = make_task(catalogue)
    base = sender.url(task).split("?")[0]
    for path in (base + "/extra", base.rsplit("/", 1)[0] + "/"):
        assert requests.post(path, json={}, timeout=5).status_code == 404


def test_a_crash_in_the_receiver_is_a_500_never_a_2xx(app, catalogue, client, monkeypatch):
    """An unexpected exception: logged, answered 500 (Runware retries), nothing stored."""
    from receiver.provider import webhooks

    task = make_task(catalogue)

    def broken(payload):
        raise RuntimeError("a bug")

    monkeypatch.setattr(webhooks, "parse_delivery", broken)
    from receiver.provider.tokens import make_token
    token = make_token(task, secret=app.extensions["webhook_secret"])
    response = client.post(f"/webhooks/runware/{task}?token={token}", json=result_for(task))
    assert response.status_code == 500
    assert response.get_json()["errors"][0]["code"] == "internal"
    assert rows(catalogue, "SELECT count(*) FROM results") == [(0,)]


@pytest.fixture
def quick_busy(app_config):
    app_config["RUNWARE_ARCHIVE_BUSY_TIMEOUT_MS"] = 200


def test_a_locked_catalogue_answers_503_and_stores_nothing(quick_busy, catalogue, sender):
    import sqlite3
    task = make_task(catalogue)
    blocker = sqlite3.connect(catalogue.path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        response = sender.result(task, result_for(task))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert rows(catalogue, "SELECT count(*) FROM results") == [(0,)]
    assert sender.result(task, result_for(task)).status_code == 200


def test_the_token_never_reaches_the_access_log(catalogue, sender, caplog):
    task = make_task(catalogue)
    url = sender.url(task)
    token = url.split("token=")[1]
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        sender.result(task, result_for(task))
        sender.result(task, result_for(task), token="f" * 64)
        raw = socket.create_connection(("127.0.0.1", int(sender.base_url.rsplit(":", 1)[1])))
        raw.sendall(f"GARBAGE /webhooks/runware/{task}?token={token} HTTP/9\r\n\r\n".encode())
        raw.recv(1000)
        raw.close()
    text = caplog.text + "".join(str(d) for d in catalogue.deliveries())
    assert "webhooks/runware" in caplog.text
    assert token not in text and "f" * 64 not in text


def test_a_body_cut_short_is_refused_and_logged_not_a_5xx(catalogue, sender):
    """The sender promises 2,000 bytes, sends 100 and hangs up: nothing is stored, the
    refusal is in the log, and the server goes on taking deliveries."""
    task = make_task(catalogue)
    host, port = sender.base_url.split("//")[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        path = sender.url(task).split(host + ":" + port)[1]
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json"
                     f"\r\nContent-Length: 2000\r\n\r\n".encode() + b'{"data": [' + b" " * 90)
    deadline = time.monotonic() + 5
    while not catalogue.deliveries(verdict="rejected") and time.monotonic() < deadline:
        time.sleep(0.05)
    refused, = catalogue.deliveries(verdict="rejected")
    assert refused["status_code"] == 400 and "cut short" in refused["reason"]
    assert rows(catalogue, "SELECT count(*) FROM results") == [(0,)]
    assert sender.result(task, result_for(task)).status_code == 200
