"""/healthz and /metrics."""

import uuid

from prometheus_client.parser import text_string_to_metric_families


def make_task(catalogue, number_results=1):
    task_uuid = str(uuid.uuid4())
    catalogue.create_task({
        "task_uuid": task_uuid, "model": "runware:twinflow-z-image-turbo@0",
        "positive_prompt": "a lantern bazaar", "params": {}, "provider": "sandbox",
        "number_results": number_results,
    })
    return task_uuid


def test_healthz_reports_a_writable_catalogue_and_the_queue(app, client):
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["catalogueWritable"] is True
    assert body["fetchQueue"] == 0 and body["oldestPendingSeconds"] is None
    catalogue = app.extensions["catalogue"]
    task = make_task(catalogue)
    catalogue.ingest(task, results=[{"taskUUID": task, "imageUUID": str(uuid.uuid4()),
                                     "imageURL": "https://im.runware.ai/x.jpg", "cost": 0.001}])
    body = client.get("/healthz").get_json()
    assert body["fetchQueue"] == 1 and body["oldestPendingSeconds"] >= 0


def test_healthz_fails_when_the_catalogue_is_locked(app, client):
    import sqlite3
    blocker = sqlite3.connect(app.extensions["catalogue"].path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        response = client.get("/healthz")
    finally:
        blocker.execute("ROLLBACK")
    assert response.status_code == 503
    assert response.get_json()["catalogueWritable"] is False
    assert client.get("/healthz").status_code == 200


def test_metrics_count_deliveries_by_verdict(app, live_server, sender):
    import requests
    catalogue = app.extensions["catalogue"]
    task = make_task(catalogue, number_results=2)
    item = {"taskUUID": task, "imageUUID": str(uuid.uuid4()),
            "imageURL": "https://im.runware.ai/x.jpg", "cost": 0.0013}
    sender.result(task, item)
    sender.result(task, item)
    sender.result(task, item, token="0" * 64)
    text = requests.get(f"{live_server.url}/metrics", timeout=5).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    by_verdict = {s.labels["verdict"]: s.value
                  for s in families["runware_archive_deliveries"].samples
                  if s.name.endswith("_total")}
    assert by_verdict == {"accepted": 1, "duplicate": 1, "rejected": 1}
    assert families["runware_archive_fetch_queue"].samples[0].value == 1
    assert families["runware_archive_cost_usd"].samples[0].value == 0.0013
    count = [s for s in families["runware_archive_ingest_seconds"].samples
             if s.name.endswith("_count")][0].value
    assert count >= 2
    assert "token" not in text
