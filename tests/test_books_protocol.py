"""The books' reading of Runware's replies, from the payloads recorded in
``tests/samples/runware/`` and from a fake Runware over loopback that answers what the test
scripts: both shapes of ``balance``, usage rows, a refused ``accountManagement``, and a
``getTaskDetails`` reply (a success and a failure) recovered through the one ingest."""

import json
import uuid
from datetime import date

import pytest
from click.testing import CliRunner

from archive import books
from receiver.cli import main
from receiver.provider import books as books_pass
from receiver.provider.reconcile import reconcile
from receiver.provider.task_details import response_of
from tests.fakes import provider  # noqa: F401  (the fixture)
from tests.recorded import recorded, with_real_ids
from tests.test_webhooks import make_task


@pytest.mark.parametrize("index, expected", [(0, (2450.75, "USD")), (1, (12.5, "USD"))])
def test_both_shapes_of_the_balance_are_read(index, expected):
    item = recorded("account-details")["payloads"][index]["data"][0]
    assert books_pass.balance_of(item) == expected


@pytest.mark.parametrize("value", [None, "12", True, {"amount": "x"}, []])
def test_a_balance_that_is_no_number_is_not_known(value):
    assert books_pass.balance_of({"balance": value}) == (None, None)


def test_usage_rows_are_read_by_date():
    reply = recorded("usage-activity")["payloads"][0]
    spend, own, details, problems = books_pass.read_replies(reply, {"u1": "all"})
    assert spend == {"2026-11-30": 0.0018, "2026-12-01": 0.0006}
    assert (own, details, problems) == (None, None, [])


def test_the_window_is_asked_in_spans_of_thirty_days():
    spans = books_pass.spans(date(2026, 1, 1), date(2026, 3, 5))
    assert spans == [(date(2026, 1, 1), date(2026, 1, 30)), (date(2026, 1, 31), date(2026, 3, 1)),
                     (date(2026, 3, 2), date(2026, 3, 5))]


def test_a_day_explains_its_difference():
    day = books.Day("2026-12-01", archive=0.0012, runware=0.0030, own_key=0.0018)
    assert (day.difference, day.other_keys) == (0.0018, 0.0012)
    assert books.Day("d", archive=0.1 + 0.2, runware=0.3).difference == 0.0  # float noise
    assert books.Day("d", archive=1.0).difference is None


@pytest.mark.parametrize("balance, burn, days", [(7.0, 7.0, 7.0), (10.0, 0.0, None),
                                                 (None, 1.0, None), (1.0, 0.7, 10.0)])
def test_the_runway_is_the_balance_at_the_weeks_pace(balance, burn, days):
    assert books.runway(balance, burn) == days


def test_the_task_details_response_is_the_original_envelope():
    task = str(uuid.uuid4())
    reply = with_real_ids(recorded("task-details")["payloads"][0], task)
    envelope = response_of(reply, task)
    assert envelope["data"][0]["seed"] == 22452
    assert response_of(reply, str(uuid.uuid4())) is None


class TestAgainstAFakeRunware:
    @pytest.fixture
    def app_config(self, app_config, provider):
        return dict(app_config, RUNWARE_API_KEY="test-key", RUNWARE_API_URL=provider.url)

    @pytest.mark.parametrize("index, status", [(0, "complete"), (1, "error")])
    def test_get_task_details_recovers_through_the_one_ingest(self, app, provider, index,
                                                              status):
        catalogue = app.extensions["catalogue"]
        task = make_task(catalogue, number_results=1)
        not_found = {"data": [], "errors": [{"code": "taskNotFound", "message": "gone",
                                             "taskType": "getResponse", "taskUUID": task}]}
        details = with_real_ids(recorded("task-details")["payloads"][index], task)
        provider.replies += [(200, not_found), (200, details)]
        report = reconcile(app, after=0)
        assert [t["taskType"] for t in provider.received[1]] == ["getTaskDetails"]
        assert catalogue.get_task(task)["status"] == status
        assert report.recovered == [task]
        sources = {r[0] for r in catalogue.conn.execute(
            "SELECT source FROM deliveries WHERE task_uuid = ?", (task,))}
        assert sources == {"taskDetails"}

    def test_a_refused_account_management_leaves_runwares_side_unknown(self, app, provider):
        provider.replies.append((403, {"data": [], "errors": [{
            "code": "insufficientPermissions", "message": "this key may not read the account",
            "taskType": "accountManagement"}]}))
        result = books_pass.run(app)
        assert all(d.runware is None and d.difference is None for d in result["days"])
        assert "insufficientPermissions" in result["account"]["problem"]
        assert result["account"]["balance"] is None
        sent = provider.received[0]
        assert {t["operation"] for t in sent} == {"getUsageActivity", "getDetails"}
        assert all(t.get("timezone") == "UTC" for t in sent if t["operation"] != "getDetails")
        assert not any("apiKeys" in t for t in sent)  # the key's UUID is not known here

    def test_the_command_says_what_runware_answered(self, app, provider):
        provider.replies.append((500, {"errors": [{"code": "internalServerError",
                                                   "message": "down"}]}))
        out = CliRunner().invoke(main, ["books", "--json"], env={
            "RUNWARE_ARCHIVE_DIR": app.config["RUNWARE_ARCHIVE_DIR"],
            "RUNWARE_API_KEY": "test-key", "RUNWARE_API_URL": provider.url,
            "RUNWARE_ARCHIVE_SUBMIT_RETRIES": "0"})
        assert out.exit_code == 0, out.output
        body = json.loads(out.stdout)
        assert body["balance"] is None and all(d["runware"] is None for d in body["days"])
        assert "internalServerError" in out.stderr


@pytest.mark.parametrize("task", [
    {"taskType": "accountManagement", "operation": "getDetails"},
    {"taskType": "accountManagement", "operation": "getUsageActivity"},
    {"taskType": "getTaskDetails"},
])
def test_a_client_key_may_not_read_the_archives_account(app, live_server, task):
    import requests
    from archive import keys
    _, secret = keys.create(app.extensions["catalogue"], "notebook")
    task_uuid = str(uuid.uuid4())
    reply = requests.post(live_server.url + "/v1", json=[{**task, "taskUUID": task_uuid}],
                          headers={"Authorization": f"Bearer {secret}"}, timeout=10)
    assert reply.status_code == 403
    error, = reply.json()["errors"]
    assert (error["code"], error["taskUUID"]) == ("insufficientPermissions", task_uuid)
    assert "balance" not in reply.text and "apiKeys" not in reply.text
