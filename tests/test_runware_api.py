"""``POST /v1`` as Runware's own Python SDK (``runware-sdk``, REST transport) sees it: the
SDK, given a client key and the archive's URL, generates with async delivery (getResponse
polling) and with sync delivery, and every result is in the catalogue under the key's
label with its cost; refusals (key, budget, parameters) send nothing on. What is forwarded instead of answered
here (other models and task types) is in tests/test_forwarding.py."""

import asyncio
import json
import threading
import uuid

import pytest
import requests
from runware import Runware, RunwareError

from archive import budget_store
from archive import keys
from protocol.schemas import MODEL_ID

TASK = {"taskType": "imageInference", "model": MODEL_ID, "width": 512, "height": 384,
        "positivePrompt": "a tidal library atrium interior"}


@pytest.fixture
def app_config(app_config):
    return dict(app_config, RUNWARE_SANDBOX_RESULT_DELAY=0.05)


@pytest.fixture
def key(app):
    """A client key's row and secret (``runware-archive keys create``'s)."""
    return keys.create(app.extensions["catalogue"], "notebook")


def run(live_server, secret, **task):
    """One task through the SDK, pointed at the archive; its list of results."""
    async def go():
        client = Runware(api_key=secret, transport="rest",
                         http_base_url=live_server.url + "/v1",
                         timeout=20_000, poll_timeout=20_000, max_retries=0)
        try:
            return await client.run({**TASK, "taskUUID": str(uuid.uuid4()),
                                     "includeCost": True, **task})
        finally:
            await client.close()

    return asyncio.run(go())


def post(live_server, tasks, secret=None):
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    return requests.post(live_server.url + "/v1", json=tasks, headers=headers, timeout=20)


def sent_upstream(app, task_uuid):
    """The task as the sandbox (the archive's provider here) received it, or None."""
    record = app.extensions["sandbox"].task(task_uuid)
    return None if record is None else record.task


@pytest.mark.parametrize("delivery", ["async", "sync"])
def test_the_sdk_generates_through_the_archive(app, live_server, key, delivery):
    row, secret = key
    results = run(live_server, secret, numberResults=2, seed=67706, deliveryMethod=delivery)
    assert sorted(r["seed"] for r in results) == [67706, 67707]
    assert all(r["cost"] > 0 and r["imageURL"].startswith(live_server.url + "/sandbox/")
               for r in results)
    task_uuid = results[0]["taskUUID"]
    task = app.extensions["catalogue"].get_task(task_uuid)
    assert (task["key_id"], task["label"], task["status"]) == (row["id"], "notebook",
                                                               "complete")
    stored = {r["image_uuid"]: r["cost"] for r in task["results"]}
    assert stored == {r["imageUUID"]: r["cost"] for r in results}
    upstream = sent_upstream(app, task_uuid)
    assert upstream["deliveryMethod"] == "async" and "/webhooks/runware/" in \
        upstream["webhookURL"]
    assert secret not in json.dumps(upstream) and secret not in task["params"]
    assert keys.list_keys(app.extensions["catalogue"].conn)[0]["spend"] == \
        pytest.approx(sum(stored.values()))


def test_the_authentication_element_is_accepted(live_server, key):
    task_uuid = str(uuid.uuid4())
    answer = post(live_server, [{"taskType": "authentication", "apiKey": key[1]},
                                {**TASK, "taskUUID": task_uuid, "deliveryMethod": "async"}])
    assert answer.status_code == 200
    assert answer.json()["data"] == [{"taskType": "imageInference", "taskUUID": task_uuid}]


@pytest.mark.parametrize("secret", [None, "rwa_not-a-key", "revoked"])
def test_an_unknown_key_is_refused_and_nothing_is_sent(app, live_server, key, secret):
    if secret == "revoked":
        assert keys.revoke(app.extensions["catalogue"], key[0]["id"])
        secret = key[1]
    task_uuid = str(uuid.uuid4())
    answer = post(live_server, [{**TASK, "taskUUID": task_uuid}], secret)
    assert answer.status_code == 401
    body = answer.json()
    assert body["data"] == [] and body["errors"][0]["code"] == "invalidApiKey"
    assert sent_upstream(app, task_uuid) is None
    assert app.extensions["catalogue"].get_task(task_uuid) is None
    with pytest.raises(RunwareError) as info:
        run(live_server, secret or "rwa_none")
    assert info.value.status_code == 401  # the SDK files invalidApiKey under "auth"


def test_a_key_over_its_budget_is_refused_and_nothing_is_sent(app, live_server):
    row, secret = keys.create(app.extensions["catalogue"], "capped", daily=0.0001)
    task_uuid = str(uuid.uuid4())
    answer = post(live_server, [{**TASK, "taskUUID": task_uuid}], secret)
    assert answer.status_code == 402
    error, = answer.json()["errors"]
    assert error["code"] == "budgetExceeded" and error["taskUUID"] == task_uuid
    assert "key 'capped'" in error["message"] and "daily budget" in error["message"]
    assert sent_upstream(app, task_uuid) is None
    assert app.extensions["catalogue"].get_task(task_uuid) is None


def test_the_archives_own_budget_applies_too(app, live_server, key):
    budget_store.set_limits(app.extensions["catalogue"], "cli", monthly=0)
    answer = post(live_server, [{**TASK, "taskUUID": str(uuid.uuid4())}], key[1])
    assert answer.status_code == 402
    assert "the monthly budget" in answer.json()["errors"][0]["message"]


def test_invalid_parameters_are_refused_in_runwares_words(app, live_server, key):
    task_uuid = str(uuid.uuid4())
    answer = post(live_server, [{**TASK, "taskUUID": task_uuid, "positivePrompt": "x",
                                 "colour": "red"}], key[1])
    assert answer.status_code == 400
    codes = {e["code"] for e in answer.json()["errors"]}
    assert codes == {"invalidPositivePromptLength", "unknownParameter"}
    assert sent_upstream(app, task_uuid) is None
    with pytest.raises(RunwareError) as info:
        run(live_server, key[1], positivePrompt="x")
    assert "positivePrompt" in info.value.message


@pytest.mark.parametrize("field, value", [("outputType", "base64Data")])
def test_what_the_archive_cannot_hand_back_yet_is_refused(app, live_server, key, field,
                                                          value):
    task_uuid = str(uuid.uuid4())
    answer = post(live_server, [{**TASK, "taskUUID": task_uuid, field: value}], key[1])
    error, = answer.json()["errors"]
    assert answer.status_code == 400 and error["code"] == "unsupportedParameter"
    assert error["parameter"] == field and sent_upstream(app, task_uuid) is None


def test_a_reused_task_uuid_is_a_conflict(live_server, key):
    task = {**TASK, "taskUUID": str(uuid.uuid4()), "deliveryMethod": "async"}
    assert post(live_server, [task], key[1]).status_code == 200
    again = post(live_server, [task], key[1])
    assert again.status_code == 400 and again.json()["errors"][0]["code"] == "conflictTaskUUID"


def test_get_response_shows_only_the_keys_own_tasks(app, live_server, key):
    task = {**TASK, "taskUUID": str(uuid.uuid4()), "deliveryMethod": "async"}
    assert post(live_server, [task], key[1]).status_code == 200
    _, other = keys.create(app.extensions["catalogue"], "someone else")
    ask = [{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]
    refused = post(live_server, ask, other)
    assert refused.status_code == 404
    assert refused.json()["errors"][0]["code"] == "taskNotFound"
    unknown = post(live_server, [{"taskType": "getResponse", "taskUUID": str(uuid.uuid4())}],
                   key[1])
    assert unknown.json()["errors"][0]["code"] == "taskNotFound"
    first = post(live_server, ask, key[1]).json()["data"]
    assert first and all(item["status"] in ("processing", "success") for item in first)


def test_a_failed_generation_reaches_the_sdk_as_an_error(app, live_server, key):
    app.config["RUNWARE_SANDBOX_FAULTS"] = "fail=1"
    for delivery in ("async", "sync"):
        with pytest.raises(RunwareError) as info:
            run(live_server, key[1], deliveryMethod=delivery)
        assert "failed on purpose" in info.value.message


def test_a_ui_password_does_not_stand_in_the_way(app, live_server, key):
    app.config["RUNWARE_ARCHIVE_UI_PASSWORD"] = "secret-ui"
    results = run(live_server, key[1], deliveryMethod="sync")
    assert len(results) == 1 and results[0]["cost"] > 0


def test_no_delivery_method_is_sync_as_at_runware(app, live_server, key):
    task_uuid = str(uuid.uuid4())
    answer = post(live_server, [{**TASK, "taskUUID": task_uuid, "numberResults": 2}], key[1])
    assert answer.status_code == 200
    data = answer.json()["data"]
    assert len(data) == 2 and all(item["imageURL"] and item["cost"] > 0 for item in data)
    assert {item["taskUUID"] for item in data} == {task_uuid}


def test_a_sync_wait_that_runs_out_answers_what_has_arrived(app, live_server, key):
    app.config.update(RUNWARE_ARCHIVE_SUBMIT_TIMEOUT=0.2, RUNWARE_SANDBOX_RESULT_DELAY=1.0)
    task_uuid = str(uuid.uuid4())
    answer = post(live_server, [{**TASK, "taskUUID": task_uuid, "numberResults": 3,
                                 "deliveryMethod": "sync"}], key[1])
    assert answer.status_code == 200 and len(answer.json()["data"]) < 3
    polled = post(live_server, [{"taskType": "getResponse", "taskUUID": task_uuid}], key[1])
    assert any(item["status"] == "processing" for item in polled.json()["data"])


def test_a_task_lost_or_failed_without_image_errors_is_an_error_to_poll(app, live_server, key):
    app.config["RUNWARE_SANDBOX_RESULT_DELAY"] = 30  # nothing arrives while the test runs
    task_uuid = str(uuid.uuid4())
    task = {**TASK, "taskUUID": task_uuid, "deliveryMethod": "async", "numberResults": 2}
    assert post(live_server, [task], key[1]).status_code == 200
    app.extensions["catalogue"].mark_failed(task_uuid, code="lost", message="gone quiet")
    polled = post(live_server, [{"taskType": "getResponse", "taskUUID": task_uuid}], key[1])
    error, = polled.json()["errors"]
    assert (error["code"], error["status"], error["taskUUID"]) == ("lost", "error", task_uuid)


def test_two_sends_of_one_task_uuid_at_once_get_one_task(app, live_server, key):
    task = {**TASK, "taskUUID": str(uuid.uuid4()), "deliveryMethod": "async"}
    answers, start = [], threading.Barrier(2)

    def send():
        start.wait()
        answers.append(post(live_server, [task], key[1]).status_code)

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(answers) == [200, 400]
