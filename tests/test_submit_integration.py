"""The core loop over real loopback HTTP, against a small fake provider in a thread:
the four seed examples submitted, their webhooks posted with every kind of bad delivery
mixed in, then the API shows exactly the right rows."""

import copy
import json

import pytest
import requests

from tests.conftest import seed_examples
from tests.fakes import provider  # noqa: F401  (the fixture)


@pytest.fixture
def app_config(app_config, provider):
    return dict(app_config, RUNWARE_API_KEY="test-key", RUNWARE_API_URL=provider.url)


def submit(live_server, params):
    return requests.post(f"{live_server.url}/api/tasks", json=params, timeout=10)


def test_the_core_loop_with_the_seed_examples(live_server, provider, sender):
    examples = seed_examples()
    for i, example in enumerate(examples):
        params = copy.deepcopy(example["request"])
        if i == 0:
            params["numberResults"] = 2
        response = submit(live_server, params)
        assert response.status_code == 202, response.text
        assert response.json() == {"taskUUID": params["taskUUID"], "status": "submitted"}

    sent = provider.tasks()
    assert [t["taskUUID"] for t in sent] == [e["request"]["taskUUID"] for e in examples]
    assert all(h["Authorization"] == "Bearer test-key" for h in provider.headers)
    for task, example in zip(sent, examples):
        assert task["includeCost"] is True
        assert task["webhookURL"].startswith(
            f"{live_server.url}/webhooks/runware/{task['taskUUID']}?token=")
        for key, value in example["request"].items():
            if key != "numberResults":
                assert task[key] == value

    # Deliveries: each seed result, a second image for the first task (bare object),
    # a duplicate, and every kind of refusal.
    first = examples[0]["response"]
    for example in examples:
        assert sender.result(example["response"]["taskUUID"], example["response"]).ok
    second = dict(first, imageUUID="0b0a8b7e-4a51-4d0e-9a8f-2d1e0c7b6a55", seed=22453,
                  imageURL="https://im.runware.ai/image/os/a14d18/ws/2/ii/second.jpg")
    assert sender.result(first["taskUUID"], second, envelope=False).json()["status"] == "complete"
    assert sender.result(first["taskUUID"], first).json()["verdict"] == "duplicate"
    other = examples[1]["response"]
    assert sender.result(first["taskUUID"], first, token="0" * 64).status_code == 403
    assert sender.result(first["taskUUID"], first, token="").status_code == 401
    assert sender.post(first["taskUUID"], None, raw=b'{"data": [').status_code == 400
    assert sender.result(first["taskUUID"], other).status_code == 409

    tasks = {t["taskUUID"]: t for t in
             requests.get(f"{live_server.url}/api/tasks", timeout=5).json()["tasks"]}
    assert len(tasks) == 4
    for example in examples:
        uuid = example["request"]["taskUUID"]
        detail = requests.get(f"{live_server.url}/api/tasks/{uuid}", timeout=5).json()
        assert detail["status"] == "complete"
        assert detail["provider"] == "runware" and detail["sandbox"] is False
        assert detail["parentTaskUUID"] is None
        assert "token" not in json.dumps(detail)
        assert detail["params"]["positivePrompt"] == example["request"]["positivePrompt"]
        results = detail["results"]
        expected = [(example["response"]["imageUUID"], example["response"]["seed"],
                     example["response"]["cost"])]
        if uuid == first["taskUUID"]:
            expected.append((second["imageUUID"], 22453, first["cost"]))
        assert [(r["imageUUID"], r["seed"], r["cost"]) for r in results] == expected
        assert all(r["archived"] is False for r in results)
        assert detail["cost"] == pytest.approx(sum(e[2] for e in expected))

    costs = requests.get(f"{live_server.url}/api/costs", timeout=5).json()
    assert costs["total"] == pytest.approx(0.0006 * 3 + 0.0013 * 2)
    assert costs["resultsWithoutCost"] == 0

    catalogue = live_server.app.extensions["catalogue"]
    verdicts = [d["verdict"] for d in catalogue.deliveries(limit=100)]
    assert verdicts.count("accepted") == 5 and verdicts.count("duplicate") == 1
    assert verdicts.count("rejected") == 4
    assert "0" * 64 not in json.dumps(catalogue.deliveries(limit=100))


def test_an_errors_delivery_fails_the_task(live_server, provider, sender):
    params = copy.deepcopy(seed_examples()[2]["request"])
    assert submit(live_server, params).status_code == 202
    error = {"errors": [{"code": "timeoutProvider", "message": "the provider timed out",
                         "taskUUID": params["taskUUID"], "taskType": "imageInference"}]}
    assert sender.post(params["taskUUID"], error).status_code == 200
    detail = requests.get(f"{live_server.url}/api/tasks/{params['taskUUID']}", timeout=5).json()
    assert detail["status"] == "error"
    assert (detail["errorCode"], detail["errorMessage"]) == (
        "timeoutProvider", "the provider timed out")


@pytest.mark.parametrize("params,parameter", [
    ({"positivePrompt": "x"}, "positivePrompt"),
    ({"positivePrompt": "a harbor", "width": 1000}, "width"),
    ({"positivePrompt": "a harbor", "steps": 51}, "steps"),
    ({"positivePrompt": "a harbor", "seed": 2**63}, "seed"),
    ({"positivePrompt": "a harbor", "webhookURL": "https://evil.example/"}, "webhookURL"),
    ({"positivePrompt": "a harbor", "colour": "red"}, "colour"),
    ({"positivePrompt": "a harbor \ud800"}, "positivePrompt"),  # a lone surrogate, escaped
    ({"positivePrompt": "a harbor", "acceleratorOptions": {
        "cacheStartStep": 2, "cacheEndStep": 9}}, "acceleratorOptions.cacheEndStep"),
])
def test_invalid_submissions_send_nothing(live_server, provider, params, parameter):
    response = submit(live_server, params)
    assert response.status_code == 422
    assert parameter in [e["parameter"] for e in response.json()["errors"]]
    assert provider.received == []
    assert requests.get(f"{live_server.url}/api/tasks", timeout=5).json()["tasks"] == []


def test_an_accepted_task_lists_the_parameters_without_effect(live_server, provider):
    params = {"positivePrompt": "a harbor", "negativePrompt": "blurry", "ttl": 120,
              "outputType": "base64Data"}
    response = submit(live_server, params)
    assert response.status_code == 202, response.text
    assert response.json()["warnings"] == [
        {"parameter": "ttl", "message": "has no effect unless outputType is URL (it is "
                                        "base64Data): only a hosted URL has a lifetime"},
        {"parameter": "negativePrompt", "message": "is ignored when CFGScale is 1 or less "
                                                   "(it is left at the default 0)"}]
    assert provider.tasks()[0]["ttl"] == 120  # sent as given all the same


def test_a_body_that_is_not_json_is_400(live_server, provider):
    response = requests.post(f"{live_server.url}/api/tasks", data="nope", timeout=5,
                             headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["errors"]
    assert provider.received == []


def test_provider_refusal_is_recorded_on_the_task(live_server, provider):
    params = copy.deepcopy(seed_examples()[0]["request"])
    provider.replies.append((400, {"errors": [{
        "code": "invalidPositivePrompt", "message": "refused by the provider",
        "parameter": "positivePrompt", "taskType": "imageInference",
        "taskUUID": params["taskUUID"]}]}))
    response = submit(live_server, params)
    assert response.status_code == 502
    assert response.json()["errors"][0]["code"] == "invalidPositivePrompt"
    detail = requests.get(f"{live_server.url}/api/tasks/{params['taskUUID']}", timeout=5).json()
    assert (detail["status"], detail["errorCode"]) == ("error", "invalidPositivePrompt")


def test_5xx_and_429_are_retried_with_the_same_task(app, live_server, provider):
    app.config["RUNWARE_ARCHIVE_SUBMIT_RETRIES"] = 3
    params = copy.deepcopy(seed_examples()[1]["request"])
    provider.replies += [(503, {"errors": [{"code": "busy"}]}),
                         (429, {"errors": [{"code": "queueFull"}]})]
    assert submit(live_server, params).status_code == 202
    assert [t["taskUUID"] for t in provider.tasks()] == [params["taskUUID"]] * 3


def test_an_unreachable_provider_is_a_clear_error(app, live_server, provider):
    provider.server.shutdown()
    provider.server.server_close()
    params = copy.deepcopy(seed_examples()[3]["request"])
    response = submit(live_server, params)
    assert response.status_code == 502
    assert response.json()["errors"][0]["code"] == "providerUnreachable"


def test_inline_results_in_the_reply_go_through_ingest(live_server, provider):
    example = seed_examples()[3]
    provider.replies.append((200, {"data": [example["response"]]}))
    assert submit(live_server, copy.deepcopy(example["request"])).status_code == 202
    detail = requests.get(
        f"{live_server.url}/api/tasks/{example['request']['taskUUID']}", timeout=5).json()
    assert detail["status"] == "complete"
    assert [r["seed"] for r in detail["results"]] == [example["response"]["seed"]]
    sources = [d["source"] for d in live_server.app.extensions["catalogue"].deliveries()]
    assert sources == ["sync"]


def test_task_listing_pages_with_a_cursor(live_server, provider):
    made = []
    for example in seed_examples():
        made.append(submit(live_server, copy.deepcopy(example["request"])).json()["taskUUID"])
    page = requests.get(f"{live_server.url}/api/tasks?limit=3", timeout=5).json()
    assert [t["taskUUID"] for t in page["tasks"]] == made[::-1][:3]
    rest = requests.get(f"{live_server.url}/api/tasks?limit=3&cursor={page['next']}",
                        timeout=5).json()
    assert [t["taskUUID"] for t in rest["tasks"]] == made[:1] and rest["next"] is None
    assert requests.get(f"{live_server.url}/api/tasks?cursor=abc", timeout=5).status_code == 400


def test_a_task_uuid_already_in_the_archive_is_a_409_and_nothing_is_sent(live_server,
                                                                         provider):
    params = copy.deepcopy(seed_examples()[2]["request"])
    assert submit(live_server, params).status_code == 202
    again = submit(live_server, dict(params, positivePrompt="another prompt entirely"))
    assert again.status_code == 409
    [error] = again.json()["errors"]
    assert (error["code"], error["parameter"]) == ("conflictTaskUUID", "taskUUID")
    assert len(provider.tasks()) == 1  # the second was never sent
    detail = requests.get(f"{live_server.url}/api/tasks/{params['taskUUID']}", timeout=5).json()
    assert detail["positivePrompt"] == params["positivePrompt"]  # the first is untouched
