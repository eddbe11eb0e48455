"""How the archive talks to Runware, as Runware's own SDKs do, over real loopback HTTP:
the retry set and schedule, ``conflictTaskUUID`` after a lost reply, async delivery with a
webhook. Against the fake provider where the test must script the answers, and against the
sandbox, which now answers a reused taskUUID as Runware does."""

import copy
import time
import uuid

import pytest
import requests

from receiver.provider.client import RETRY_STATUSES, SdkRetry, retry_policy
from tests.conftest import seed_examples
from tests.fakes import HANG_UP, provider  # noqa: F401  (the fixture)
from tests.recorded import recorded, with_real_ids


def submit(live_server, params):
    return requests.post(f"{live_server.url}/api/tasks", json=params, timeout=30)


def detail(live_server, task_uuid):
    return requests.get(f"{live_server.url}/api/tasks/{task_uuid}", timeout=10).json()


def a_task(**changes):
    params = copy.deepcopy(seed_examples()[0]["request"])
    params["taskUUID"] = str(uuid.uuid4())
    params.update(changes)
    return params


def conflict_reply(task_uuid):
    """Runware's answer to a taskUUID it has seen (tests/samples/runware/)."""
    sample = recorded("conflict-task-uuid")
    return sample["status"], with_real_ids(sample["payload"], task_uuid)


class TestAgainstTheFakeProvider:
    @pytest.fixture
    def app_config(self, app_config, provider):
        return dict(app_config, RUNWARE_API_KEY="test-key", RUNWARE_API_URL=provider.url,
                    RUNWARE_ARCHIVE_SUBMIT_RETRIES=2)

    def test_a_lost_reply_then_a_conflict_is_an_accepted_task(self, live_server, provider):
        params = a_task()
        provider.replies += [(HANG_UP, None), conflict_reply(params["taskUUID"]),
                             (200, {"data": []})]
        response = submit(live_server, params)
        assert response.status_code == 202, response.text
        assert response.json() == {"taskUUID": params["taskUUID"], "status": "submitted"}
        kinds = [(t["taskType"], t["taskUUID"]) for t in provider.tasks()]
        assert kinds == [("imageInference", params["taskUUID"])] * 2 + [
            ("getResponse", params["taskUUID"])]  # confirmed, as Runware's SDK does
        task = detail(live_server, params["taskUUID"])
        assert task["status"] == "submitted" and task["acknowledgedAt"]
        assert task["errorCode"] is None

    def test_results_the_confirming_get_response_already_has_are_stored(
            self, live_server, provider):
        params = a_task()
        result = dict(seed_examples()[0]["response"], taskUUID=params["taskUUID"],
                      imageUUID=str(uuid.uuid4()), status="success")
        provider.replies += [(502, {"errors": [{"code": "badGateway"}]}),
                             conflict_reply(params["taskUUID"]), (200, {"data": [result]})]
        assert submit(live_server, params).json()["status"] == "complete"
        assert [r["imageUUID"] for r in detail(live_server, params["taskUUID"])["results"]] == [
            result["imageUUID"]]

    def test_a_conflict_on_the_first_attempt_is_said_plainly(self, live_server, provider):
        params = a_task()
        provider.replies.append(conflict_reply(params["taskUUID"]))
        response = submit(live_server, params)
        assert response.status_code == 409
        [error] = response.json()["errors"]
        assert error["code"] == "conflictTaskUUID" and "new taskUUID" in error["message"]
        assert len(provider.tasks()) == 1  # not retried, not polled
        assert detail(live_server, params["taskUUID"])["status"] == "error"

    @pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
    def test_runwares_retry_set_is_retried(self, live_server, provider, status):
        params = a_task()
        provider.replies.append((status, {"errors": [{"code": "busy", "message": "later"}]}))
        assert submit(live_server, params).status_code == 202
        assert len(provider.tasks()) == 2

    @pytest.mark.parametrize("status", [400, 401, 402, 403, 404])
    def test_refusals_are_not_retried(self, live_server, provider, status):
        params = a_task()
        provider.replies.append((status, {"errors": [{"code": "no", "message": "refused",
                                                      "taskUUID": params["taskUUID"]}]}))
        assert submit(live_server, params).status_code in (402, 502)
        assert len(provider.tasks()) == 1

    def test_a_webhook_goes_with_async_delivery(self, live_server, provider):
        submit(live_server, a_task())
        [sent] = provider.tasks()
        assert sent["deliveryMethod"] == "async" and sent["webhookURL"]

    def test_sync_when_asked_keeps_the_webhook(self, live_server, provider):
        submit(live_server, a_task(deliveryMethod="sync"))
        [sent] = provider.tasks()
        assert sent["deliveryMethod"] == "sync" and sent["webhookURL"]


def test_the_schedule_is_the_sdks():
    """1 s doubling to 30 s, plus 0-1 s of jitter (Runware/runware-python
    runware/utils/retry.py); urllib3's own first retry would not wait at all."""
    assert retry_policy().total == 3  # the SDK's max_retries
    policy = retry_policy(retries=6)
    waits = []
    for _ in range(6):
        policy = policy.increment(method="POST", url="/v1", error=ConnectionError())
        waits.append(policy.get_backoff_time())
    assert isinstance(policy, SdkRetry)
    for wait, base in zip(waits, [1, 2, 4, 8, 16, 30]):
        assert base <= wait <= base + 1
    assert {408, 429, 500, 599} <= RETRY_STATUSES and 400 not in RETRY_STATUSES


class TestAgainstTheSandbox:
    @pytest.fixture
    def app_config(self, app_config):
        return dict(app_config, RUNWARE_SANDBOX_RESULT_DELAY=0.05,
                    RUNWARE_SANDBOX_FAULTS="reply_lost=1,submit_max=1")

    def test_a_lost_reply_costs_nothing_and_loses_nothing(self, app, live_server):
        params = {"positivePrompt": "a lantern bazaar on an ice harbor", "numberResults": 2,
                  "width": 512, "height": 512}
        response = submit(live_server, params)
        assert response.status_code == 202, response.text
        task_uuid = response.json()["taskUUID"]
        deadline = time.monotonic() + 15
        while detail(live_server, task_uuid)["status"] != "complete":
            assert time.monotonic() < deadline, detail(live_server, task_uuid)
            time.sleep(0.05)
        assert len(app.extensions["sandbox"].items(task_uuid)) == 2  # generated once
        task = detail(live_server, task_uuid)
        assert len(task["results"]) == 2 and task["errorCode"] is None
