"""``POST /v1`` forwards what it does not answer itself, over real loopback HTTP: other
models' ``imageInference`` (recorded under the client key, its results archived), other
task types (not recorded), ``getResponse`` for tasks the archive does not hold; the
upstream's answer, refusals and failures included, reaches the client as it was sent."""

import json
import uuid

import pytest
import requests

from archive import keys
from protocol.schemas import MODEL_ID
from tests.fakes import HANG_UP, provider  # noqa: F401  (the fixture)

OTHER = "runware:101@1"  # FLUX.1 [dev]: a model the archive has no schema for
TASK = {"taskType": "imageInference", "model": OTHER, "positivePrompt": "a lighthouse in fog",
        "width": 1024, "height": 768, "seed": 4242, "numberResults": 1}


@pytest.fixture
def upstream_key():
    """The archive's Runware key; a test parametrized with None gets the sandbox."""
    return "upstream-key"


@pytest.fixture
def app_config(app_config, provider, upstream_key):
    if upstream_key is None:
        return app_config
    return dict(app_config, RUNWARE_API_KEY=upstream_key, RUNWARE_API_URL=provider.url,
                RUNWARE_ARCHIVE_PUBLIC_URL="http://127.0.0.1:5000")  # TwinFlow's webhookURL


@pytest.fixture
def key(app):
    return keys.create(app.extensions["catalogue"], "notebook")


def post(live_server, tasks, secret):
    return requests.post(live_server.url + "/v1", json=tasks, timeout=20,
                         headers={"Authorization": f"Bearer {secret}"})


def result(task_uuid, n=0, cost=0.0038):
    return {"taskType": "imageInference", "taskUUID": task_uuid,
            "imageUUID": str(uuid.UUID(int=n + 1)), "seed": 4242 + n, "cost": cost,
            "imageURL": f"https://im.runware.ai/image/ws/2/ii/{n}.jpg"}


def test_another_model_is_forwarded_with_the_archives_key_and_archived(
        app, live_server, provider, key):
    row, secret = key
    task_uuid = str(uuid.uuid4())
    reply = {"data": [result(task_uuid)]}
    provider.replies.append((200, reply))
    answer = post(live_server, [{"taskType": "authentication", "apiKey": secret},
                                {**TASK, "taskUUID": task_uuid, "deliveryMethod": "sync"}],
                  secret)
    assert (answer.status_code, answer.json()) == (200, reply)
    sent, = provider.received
    assert sent == [{**TASK, "taskUUID": task_uuid, "deliveryMethod": "sync",
                     "includeCost": True}]  # no webhookURL of ours, nothing else
    assert provider.headers[0]["Authorization"] == "Bearer upstream-key"
    assert secret not in json.dumps(provider.headers) + json.dumps(provider.received)
    task = app.extensions["catalogue"].get_task(task_uuid)
    assert (task["model"], task["label"], task["key_id"], task["status"]) == (
        OTHER, "notebook", row["id"], "complete")
    assert (task["positive_prompt"], task["width"], task["height"]) == (
        TASK["positivePrompt"], 1024, 768)
    assert [(r["seed"], r["cost"]) for r in task["results"]] == [(4242, 0.0038)]
    assert secret not in task["params"]
    listed, = keys.list_keys(app.extensions["catalogue"].conn)
    assert (listed["spend"], listed["tasks"]) == (pytest.approx(0.0038), 1)
    models = requests.get(f"{live_server.url}/api/tasks", timeout=5).json()["tasks"]
    assert [t["model"] for t in models] == [OTHER]


def test_an_async_task_is_polled_through_the_archive_and_ingested(
        app, live_server, provider, key):
    task_uuid = str(uuid.uuid4())
    ack = post(live_server, [{**TASK, "taskUUID": task_uuid, "deliveryMethod": "async"}],
               key[1])
    assert ack.json() == {"data": [{"taskType": "imageInference", "taskUUID": task_uuid}]}
    assert app.extensions["catalogue"].get_task(task_uuid)["status"] == "submitted"
    polled = {"data": [dict(result(task_uuid), status="success")]}
    provider.replies.append((200, polled))
    answer = post(live_server, [{"taskType": "getResponse", "taskUUID": task_uuid}], key[1])
    assert (answer.status_code, answer.json()) == (200, polled)
    assert provider.received[-1] == [{"taskType": "getResponse", "taskUUID": task_uuid}]
    task = app.extensions["catalogue"].get_task(task_uuid)
    assert task["status"] == "complete" and task["cost"] == pytest.approx(0.0038)


def test_an_upstream_refusal_reaches_the_client_unchanged_and_nothing_stays(
        app, live_server, provider, key):
    task_uuid = str(uuid.uuid4())
    refusal = {"errors": [{"code": "invalidModel", "message": "Model not found.",
                           "parameter": "model", "taskType": "imageInference",
                           "taskUUID": task_uuid}]}
    provider.replies.append((400, refusal))
    answer = post(live_server, [{**TASK, "taskUUID": task_uuid}], key[1])
    assert (answer.status_code, answer.json()) == (400, refusal)
    assert app.extensions["catalogue"].get_task(task_uuid) is None
    again = post(live_server, [{**TASK, "taskUUID": task_uuid}], key[1])  # may be resent
    assert again.status_code == 200 and len(provider.received) == 2


@pytest.mark.parametrize("task", [
    {"taskType": "imageUpscale", "inputImage": "c64351d5-4c59-42f7-95e1-eace013eddab",
     "upscaleFactor": 2},
    {"taskType": "promptEnhance", "prompt": "a cat", "promptMaxLength": 64,
     "promptVersions": 1}])
def test_other_task_types_are_forwarded_unchanged_and_not_archived(
        app, live_server, provider, key, task):
    task = {**task, "taskUUID": str(uuid.uuid4())}
    reply = {"data": [{"taskType": task["taskType"], "taskUUID": task["taskUUID"],
                       "cost": 0.001, "text": "whatever the upstream says"}]}
    provider.replies.append((200, reply))
    answer = post(live_server, [task], key[1])
    assert (answer.status_code, answer.json()) == (200, reply)
    assert provider.received == [[task]]
    assert app.extensions["catalogue"].get_task(task["taskUUID"]) is None


def test_an_upstream_failure_reaches_the_client_with_its_status(app, live_server, provider,
                                                                key):
    failure = {"errors": [{"code": "internalServerError", "message": "try again"}]}
    provider.replies += [(503, failure)] * 2  # the first send and its one retry
    task_uuid = str(uuid.uuid4())
    answer = post(live_server, [{**TASK, "taskUUID": task_uuid}], key[1])
    assert (answer.status_code, answer.json()) == (503, failure)
    assert app.extensions["catalogue"].get_task(task_uuid)["status"] == "error"


def test_an_unreachable_upstream_is_a_runware_style_502(app, live_server, provider, key):
    app.extensions.pop("provider_client", None)
    app.config["RUNWARE_API_URL"] = "http://127.0.0.1:9/v1"  # nothing listens there
    task_uuid = str(uuid.uuid4())
    answer = post(live_server, [{**TASK, "taskUUID": task_uuid}], key[1])
    assert answer.status_code == 502
    error, = answer.json()["errors"]
    assert (error["code"], error["taskUUID"]) == ("providerUnreachable", task_uuid)


@pytest.mark.parametrize("upstream_key", [None])
def test_without_a_runware_key_the_sandbox_answers_with_its_own_refusal(app, live_server,
                                                                        key):
    task_uuid = str(uuid.uuid4())
    answer = post(live_server, [{**TASK, "taskUUID": task_uuid}], key[1])
    assert answer.status_code == 400
    error, = answer.json()["errors"]
    assert (error["parameter"], error["taskUUID"]) == ("model", task_uuid)
    assert app.extensions["sandbox"].task(task_uuid) is None
    assert app.extensions["catalogue"].get_task(task_uuid) is None
    other = post(live_server, [{"taskType": "imageUpscale", "taskUUID": task_uuid}], key[1])
    assert other.status_code == 400
    assert other.json()["errors"][0]["message"].endswith(
        "is not supported by the sandbox (imageInference, getResponse, accountManagement,"
        " getTaskDetails).")


def test_a_retry_that_meets_its_own_first_send_is_an_ack(app, live_server, provider, key):
    task_uuid = str(uuid.uuid4())
    conflict = {"data": [], "errors": [{"code": "conflictTaskUUID", "taskUUID": task_uuid,
                                        "message": "taskUUID already used",
                                        "taskType": "imageInference"}]}
    provider.replies += [(HANG_UP, None), (400, conflict),
                         (200, {"data": [dict(result(task_uuid), status="success")]})]
    answer = post(live_server, [{**TASK, "taskUUID": task_uuid}], key[1])
    assert (answer.status_code, answer.json()) == (
        200, {"data": [{"taskType": "imageInference", "taskUUID": task_uuid}]})
    assert [t["taskType"] for t in provider.tasks()] == ["imageInference"] * 2 + [
        "getResponse"]
    task = app.extensions["catalogue"].get_task(task_uuid)
    assert task["status"] == "complete" and len(task["results"]) == 1


def test_an_array_mixing_twinflow_and_forwarded_tasks_answers_both(app, live_server,
                                                                   provider, key):
    twin = {"taskType": "imageInference", "model": MODEL_ID, "width": 512, "height": 512,
            "positivePrompt": "a quiet pier at dawn", "taskUUID": str(uuid.uuid4()),
            "deliveryMethod": "async"}
    other = {"taskType": "promptEnhance", "prompt": "a cat", "taskUUID": str(uuid.uuid4())}
    answer = post(live_server, [twin, other], key[1])
    assert answer.status_code == 200, answer.text
    assert "errors" not in answer.json(), answer.text
    assert [item["taskUUID"] for item in answer.json()["data"]] == [twin["taskUUID"],
                                                                    other["taskUUID"]]
    sent = provider.tasks()
    assert [t["taskType"] for t in sent] == ["imageInference", "promptEnhance"]
    assert "webhookURL" in sent[0] and sent[1] == other


def test_another_keys_forwarded_task_is_not_polled_for_it(app, live_server, provider, key):
    task_uuid = str(uuid.uuid4())
    post(live_server, [{**TASK, "taskUUID": task_uuid, "deliveryMethod": "async"}], key[1])
    _, other = keys.create(app.extensions["catalogue"], "someone else")
    polled = post(live_server, [{"taskType": "getResponse", "taskUUID": task_uuid}], other)
    assert polled.status_code == 404
    assert polled.json()["errors"][0]["code"] == "taskNotFound"
    assert len(provider.received) == 1  # the task itself, no getResponse


def test_a_key_whose_budget_is_spent_forwards_nothing(app, live_server, provider):
    catalogue = app.extensions["catalogue"]
    row, secret = keys.create(catalogue, "capped", daily=0.001)
    first = str(uuid.uuid4())
    provider.replies.append((200, {"data": [result(first, cost=0.002)]}))
    assert post(live_server, [{**TASK, "taskUUID": first}], secret).status_code == 200
    refused = post(live_server, [{**TASK, "taskUUID": str(uuid.uuid4())}], secret)
    assert refused.status_code == 402
    assert refused.json()["errors"][0]["code"] == "budgetExceeded"
    assert len(provider.received) == 1


def test_a_further_authentication_element_is_never_sent_on(app, live_server, provider, key):
    auth = {"taskType": "authentication", "apiKey": key[1]}
    alone = post(live_server, [auth, auth], key[1])
    assert alone.status_code == 400
    assert alone.json()["errors"][0]["code"] == "invalidRequestBody"
    task = {"taskType": "promptEnhance", "prompt": "a cat", "taskUUID": str(uuid.uuid4())}
    assert post(live_server, [auth, task, auth], key[1]).status_code == 200
    assert provider.received == [[task]]
