"""Deliveries in every shape Runware's own SDKs handle, posted to the webhook over real
loopback HTTP: failed images inside ``data[]``, progress-only items, null and float fields,
the singular ``error``, any Content-Type, and one bad item beside good ones. The payloads
come from ``tests/samples/runware/`` (each file names the SDK test it was taken from)."""

import uuid

import pytest

from tests.recorded import recorded, with_real_ids
from tests.test_webhooks import make_task, result_for, rows


@pytest.fixture
def catalogue(app):
    return app.extensions["catalogue"]


def failures(catalogue, task):
    return rows(catalogue, "SELECT image_uuid, code, message FROM task_errors"
                           " WHERE task_uuid = ? ORDER BY rowid", (task,))


def test_a_failed_image_inside_data_is_stored_beside_the_good_one(catalogue, sender):
    task = make_task(catalogue, number_results=3)
    names = {}
    payload = with_real_ids(recorded("per-item-error")["payload"], task, names)
    response = sender.post(task, payload)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["new"], answer["failed"], answer["verdict"]) == (1, 1, "accepted")
    assert rows(catalogue, "SELECT image_uuid FROM results WHERE task_uuid = ?",
                (task,)) == [(names["ok-1"],)]
    assert failures(catalogue, task) == [(names["fail-2"], "inferenceError", "one of N failed")]
    row = catalogue.get_task(task)
    assert (row["status"], row["errors_received"]) == ("error", 1)


def test_the_same_failed_image_counts_once_however_it_arrives(catalogue, sender):
    task = make_task(catalogue, number_results=2)
    image = str(uuid.uuid4())
    nested = {"taskUUID": task, "imageUUID": image, "status": "error",
              "error": {"code": "inferenceError", "message": "failed"}}
    flat = {"taskUUID": task, "imageUUID": image, "status": "error", "code": "inferenceError",
            "message": "failed", "documentation": "https://runware.ai/docs/platform/errors"}
    first = sender.post(task, nested).json()
    again = sender.post(task, {"data": [], "errors": [flat]}).json()
    assert (first["verdict"], first["failed"]) == ("failed", 1)
    assert (again["verdict"], again["failed"]) == ("duplicate", 0)
    assert len(failures(catalogue, task)) == 1
    assert catalogue.get_task(task)["errors_received"] == 1


def test_a_delivery_of_only_failures_is_not_an_accepted_one(catalogue, sender):
    task = make_task(catalogue, number_results=1)
    sender.post(task, {"taskUUID": task, "imageUUID": str(uuid.uuid4()), "status": "error",
                       "error": {"code": "timeoutProvider", "message": "slow"}})
    [logged] = catalogue.deliveries(task_uuid=task)
    assert (logged["verdict"], logged["errors"], logged["results_new"]) == ("failed", 1, 0)


def test_progress_items_are_ignored_not_refused(catalogue, sender):
    task = make_task(catalogue, number_results=1)
    names = {}
    progress, later, done = [with_real_ids(p, task, names) for p in
                             recorded("progress-then-result")["payloads"]]
    for payload in (progress, later):
        answer = sender.post(task, payload)
        assert answer.status_code == 200
        assert (answer.json()["verdict"], answer.json()["progress"]) == ("progress", 1)
    assert sender.post(task, done).json()["new"] == 1
    assert catalogue.get_task(task)["status"] == "complete"


def test_processing_status_items_beside_an_unreadable_one(catalogue, sender):
    """The TypeScript SDK's mock success item carries no imageUUID: it cannot be stored,
    so it is reported, and the progress items beside it are still taken."""
    task = make_task(catalogue, number_results=1)
    payload = with_real_ids(recorded("processing-status")["payload"], task)
    response = sender.post(task, payload)
    assert response.status_code == 200, response.text
    assert response.json()["unreadable"] == [{"item": "data[2].imageUUID",
                                              "reason": "is required"}]
    [logged] = catalogue.deliveries(task_uuid=task)
    assert "data[2].imageUUID: is required" in logged["reason"]


def test_one_bad_item_never_costs_the_good_ones(catalogue, sender):
    task = make_task(catalogue, number_results=3)
    good, other = result_for(task, seed=1), result_for(task, seed=2)
    bad = dict(result_for(task), seed="seven")
    response = sender.post(task, {"data": [good, bad, other, "not an object"]})
    assert response.status_code == 200
    answer = response.json()
    assert answer["new"] == 2
    assert [u["item"] for u in answer["unreadable"]] == ["data[1].seed", "data[3]"]
    assert rows(catalogue, "SELECT seed FROM results WHERE task_uuid = ? ORDER BY seed",
                (task,)) == [(1,), (2,)]
    [logged] = catalogue.deliveries(task_uuid=task)
    assert logged["verdict"] == "accepted" and logged["reason"].startswith("2 item(s)")


@pytest.mark.parametrize("changes, stored", [
    ({"NSFWContent": None}, {"nsfw": None}),
    ({"seed": None}, {"seed": None}),
    ({"seed": 22452.0}, {"seed": 22452}),
    ({"status": "completed"}, {}),
    ({"status": "success", "progress": 100}, {}),
])
def test_fields_runware_leaves_null_or_writes_differently(catalogue, sender, changes, stored):
    task = make_task(catalogue, number_results=1)
    item = {**result_for(task), **changes}
    assert sender.result(task, item, envelope=False).status_code == 200
    row = catalogue.get_task(task)["results"][0]
    for column, value in stored.items():
        assert row[column] == value


def test_a_seed_that_is_not_whole_is_still_refused(catalogue, sender):
    task = make_task(catalogue, number_results=1)
    response = sender.result(task, {**result_for(task), "seed": 22452.5})
    assert response.status_code == 400
    assert response.json()["errors"][0]["parameter"] == "data[0].seed"


@pytest.mark.parametrize("index", [0, 1])
def test_the_singular_error_envelope_as_object_or_list(catalogue, sender, index):
    task = make_task(catalogue, number_results=1)
    payload = recorded("singular-error")["payloads"][index]
    response = sender.post(task, payload)
    assert response.status_code == 200 and response.json()["failed"] == 1
    assert catalogue.get_task(task)["status"] == "error"


@pytest.mark.parametrize("content_type", ["text/plain", "", "application/x-www-form-urlencoded",
                                          "application/json; charset=utf-8"])
def test_json_is_read_whatever_the_content_type_says(catalogue, sender, content_type):
    task = make_task(catalogue, number_results=1)
    response = sender.post(task, {"data": [result_for(task)]},
                           headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text
    [logged] = catalogue.deliveries(task_uuid=task)
    assert logged["content_type"] == (content_type or None)


def test_a_body_that_is_not_json_is_still_refused_and_its_type_kept(catalogue, sender):
    task = make_task(catalogue, number_results=1)
    response = sender.post(task, None, raw=b"image=1", headers={"Content-Type": "text/plain"})
    assert response.status_code == 400
    [logged] = catalogue.deliveries(task_uuid=task)
    assert (logged["verdict"], logged["content_type"]) == ("rejected", "text/plain")


def test_the_task_api_counts_failed_images(catalogue, sender, client):
    task = make_task(catalogue, number_results=2)
    failed = str(uuid.uuid4())
    sender.post(task, {"data": [result_for(task), {
        "taskUUID": task, "imageUUID": failed, "status": "error",
        "error": {"code": "inferenceError", "message": "one failed"}}]})
    body = client.get(f"/api/tasks/{task}").get_json()
    assert body["imagesFailed"] == 1
    assert body["failures"] == [{"imageUUID": failed, "code": "inferenceError",
                                 "message": "one failed", "receivedAt": body["failures"][0][
                                     "receivedAt"]}]
    page = client.get(f"/tasks/{task}").get_data(as_text=True)
    assert 'class="image failed-image"' in page and "one failed" in page
    assert "delivery accepted" in page and "image failed" in page


def test_the_timeline_shows_a_failures_only_delivery_as_failed(catalogue, sender, client):
    task = make_task(catalogue, number_results=1)
    sender.post(task, {"data": [], "errors": [{"code": "timeoutProvider", "message": "slow",
                                               "taskUUID": task}]})
    page = client.get(f"/tasks/{task}").get_data(as_text=True)
    assert "delivery failed" in page and "delivery accepted" not in page
