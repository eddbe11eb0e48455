"""The sandbox keeps books: every generation is charged to its account under the key that
sent it, and it answers ``accountManagement`` (``getDetails``, ``getUsageActivity``) and
``getTaskDetails`` in the shapes of Runware's SDK type maps, over real loopback HTTP."""

import hashlib
import os
import uuid
from datetime import datetime, timezone

import pytest

from archive.pricing import cost_per_image
from sandbox.ledger import key_uuid
from tests.test_sandbox import Sandbox, new_task

PASSWORD = "a-ui-password"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "RUNWARE_SANDBOX_RESULT_DELAY": 0.01,
            "RUNWARE_ARCHIVE_UI_PASSWORD": PASSWORD, "RUNWARE_SANDBOX_BALANCE": 25.0}


@pytest.fixture
def sandbox(live_server):
    return Sandbox(live_server)


def account(sandbox, **fields):
    reply = sandbox.post({"taskType": "accountManagement", "taskUUID": str(uuid.uuid4()),
                          **fields})
    return reply.status_code, reply.json()


def usage(sandbox, **fields):
    status, body = account(sandbox, operation="getUsageActivity", **fields)
    assert status == 200, body
    return body["data"][0]


PRICE = cost_per_image(512, 384, 4)


def test_get_details_has_the_starting_balance_and_the_type_maps_fields(sandbox):
    status, body = account(sandbox, operation="getDetails")
    item = body["data"][0]
    assert status == 200
    assert {"taskType", "taskUUID", "operation", "organizationUUID", "organizationName",
            "balance", "team", "apiKeys", "usage"} <= set(item)
    assert item["balance"] == {"amount": 25.0, "freeBalance": 0, "currency": "USD"}
    assert set(item["usage"]) == {"today", "last7Days", "last30Days", "total"}
    assert [k["name"] for k in item["apiKeys"]] == ["sandbox key", "UI password"]
    assert sandbox.key not in str(item) and PASSWORD not in str(item)


def test_the_balance_falls_by_what_was_generated(sandbox):
    assert sandbox.post(new_task(numberResults=3)).status_code == 200  # sync: all done
    item = account(sandbox, operation="getDetails")[1]["data"][0]
    assert item["balance"]["amount"] == pytest.approx(25.0 - 3 * PRICE)
    assert item["usage"]["today"] == {"credits": pytest.approx(3 * PRICE), "requests": 1}
    mine = next(k for k in item["apiKeys"] if k["name"] == "sandbox key")
    assert mine["requests"] == 1 and "lastUsedAt" in mine


def test_failed_generations_are_not_charged(sandbox):
    sandbox.post(new_task(numberResults=2), faults="fail=1")
    assert account(sandbox, operation="getDetails")[1]["data"][0]["balance"]["amount"] == 25.0


def test_a_generation_still_running_is_not_charged_yet(sandbox):
    clock = sandbox.freeze()
    sandbox.post(new_task(deliveryMethod="async"))  # finishes 10 ms after acceptance
    assert usage(sandbox)["usage"]["timeseries"]["meta"]["totalSpend"] == 0
    clock.advance(1)
    assert usage(sandbox)["usage"]["timeseries"]["meta"]["totalSpend"] == pytest.approx(PRICE)


def test_usage_by_day_model_and_key(sandbox):
    sandbox.post(new_task(numberResults=2))
    sandbox.post(new_task(), key=PASSWORD)  # another tool, with another key
    today = datetime.now(timezone.utc).date().isoformat()
    item = usage(sandbox, startDate=today, endDate=today,
                 groupBy=["date", "model", "apiKey"], timezone="UTC")
    assert (item["startDate"], item["endDate"]) == (today, today)
    days = item["usage"]["timeseries"]
    assert days["data"] == [{"date": today, "count": 2, "spend": pytest.approx(3 * PRICE)}]
    assert days["meta"]["totalSpend"] == pytest.approx(3 * PRICE)
    keys = {row["apiKey"]: row["spend"] for row in item["usage"]["apiKey"]["data"]}
    assert keys == {key_uuid(sandbox.key, sandbox.key): pytest.approx(2 * PRICE),
                    key_uuid(PASSWORD, sandbox.key): pytest.approx(PRICE)}
    assert item["usage"]["model"]["data"][0]["model"] == "runware:twinflow-z-image-turbo@0"
    own = usage(sandbox, startDate=today, endDate=today,
                apiKeys=[key_uuid(sandbox.key, sandbox.key)])
    assert own["usage"]["timeseries"]["meta"]["totalSpend"] == pytest.approx(2 * PRICE)


def test_days_are_cut_in_the_time_zone_asked_for(sandbox):
    clock = sandbox.freeze()
    clock.now = datetime(2026, 11, 30, 23, 30, tzinfo=timezone.utc).timestamp()
    sandbox.post(new_task())
    clock.advance(60)
    window = {"startDate": "2026-11-30", "endDate": "2026-12-01"}
    utc = usage(sandbox, **window)["usage"]["timeseries"]["data"]
    tokyo = usage(sandbox, timezone="Asia/Tokyo", **window)["usage"]["timeseries"]["data"]
    assert [r["spend"] > 0 for r in utc] == [True, False]      # 23:30 UTC on the 30th
    assert [r["spend"] > 0 for r in tokyo] == [False, True]    # 08:30 on the 1st in Tokyo


@pytest.mark.parametrize("fields, code", [
    ({"operation": "getUsageActivity", "startDate": "2026-01-01", "endDate": "2026-03-01"},
     "invalidEndDate"),
    ({"operation": "getUsageActivity", "startDate": "2026-02-01", "endDate": "2026-01-01"},
     "invalidEndDate"),
    ({"operation": "getUsageActivity", "startDate": "01/02/2026"}, "invalidStartDate"),
    ({"operation": "getUsageActivity", "timezone": "Mars/Olympus"}, "invalidTimezone"),
    ({"operation": "getUsageActivity", "groupBy": ["hour"]}, "invalidGroupBy"),
    ({"operation": "getUsageActivity", "apiKeys": "one"}, "invalidApiKeys"),
    ({"operation": "deleteEverything"}, "invalidOperation"),
    ({}, "invalidOperation"),
])
def test_a_bad_request_is_answered_in_runware_errors(sandbox, fields, code):
    status, body = account(sandbox, **fields)
    assert status == 400
    assert body["errors"][0]["code"] == code and body["data"] == []


def test_get_task_details_has_the_request_and_the_results(sandbox):
    task = new_task(numberResults=2, includeCost=True)
    sandbox.post(task)
    reply = sandbox.post({"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]})
    item = reply.json()["data"][0]
    assert (item["taskType"], item["taskUUID"]) == ("getTaskDetails", task["taskUUID"])
    assert item["request"][0]["positivePrompt"] == task["positivePrompt"]
    results = item["response"]["data"]
    assert len(results) == 2 and all(r["cost"] == PRICE for r in results)
    assert {r["taskUUID"] for r in results} == {task["taskUUID"]}


def test_get_task_details_of_an_unknown_task_is_task_not_found(sandbox):
    reply = sandbox.post({"taskType": "getTaskDetails", "taskUUID": str(uuid.uuid4())})
    assert reply.status_code == 404 and reply.json()["errors"][0]["code"] == "taskNotFound"


def test_forget_makes_get_response_lose_a_task_that_get_task_details_keeps(sandbox):
    clock = sandbox.freeze()
    task = new_task(deliveryMethod="async")
    sandbox.post(task, faults="forget=60")
    clock.advance(1)
    assert sandbox.poll(task["taskUUID"]).json()["data"][0]["status"] == "success"
    clock.advance(60)
    assert sandbox.poll(task["taskUUID"]).json()["errors"][0]["code"] == "taskNotFound"
    details = sandbox.post({"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]})
    assert len(details.json()["data"][0]["response"]["data"]) == 1


def test_the_drop_fault_parses():
    from sandbox.faults import parse_faults
    faults = parse_faults("drop=1,forget=30")
    assert (faults.drop, faults.forget) == (1.0, 30.0)
    assert faults.chance("drop", "any image", "webhook", 7)


def test_the_books_keep_neither_a_key_nor_a_plain_hash_of_one(sandbox, live_server):
    """A charge is filed under an HMAC of the key that sent it, keyed by the sandbox's own
    key: the UI password (one of the keys) is not in sandbox.db, nor its SHA-256, nor
    the UUID an unkeyed hash of it would make."""

    assert sandbox.post(new_task(), key=PASSWORD).status_code == 200
    state = live_server.app.extensions["sandbox"]
    stored = b"".join(open(path, "rb").read() for path in (state.path, state.path + "-wal")
                      if os.path.exists(path))
    unkeyed = str(uuid.uuid5(uuid.UUID("6f1c9a52-3e0b-4d7f-9a3c-2b8e5d4f1a60"),
                             hashlib.sha256(PASSWORD.encode()).hexdigest()))
    for secret in (PASSWORD, hashlib.sha256(PASSWORD.encode()).hexdigest(), unkeyed):
        assert secret.encode() not in stored
    assert key_uuid(PASSWORD, sandbox.key).encode() in stored
