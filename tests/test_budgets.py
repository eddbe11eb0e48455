"""Budgets: the refusal rule at its edge, periods in the configured zone, in-flight tasks,
two concurrent submissions over real HTTP, and one alert per crossing to a local receiver."""

import threading
import time
import uuid
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest
import requests
from click.testing import CliRunner

from archive import budget_store
from archive import budgets
from archive.catalogue import Catalogue, utcnow
from receiver import config as settings
from receiver.worker import BUDGET_INTERVAL, make_fetcher
from receiver.cli import main
from receiver.provider.tokens import make_token
from tests.costs_helpers import add_result, add_task, at
from tests.fakes import FakeProvider

PROMPT = {"positivePrompt": "a lighthouse at dawn"}  # 1024×1024, 4 steps: estimate $0.0006


@pytest.fixture
def catalogue(tmp_path, migrated_copy):
    cat = Catalogue(migrated_copy(tmp_path / "catalogue.db"))
    cat.migrate()  # up to date already: a copy of the session's migrated catalogue
    return cat


def spend(catalogue, cost, *, when=None):
    add_result(catalogue, add_task(catalogue), when or utcnow(), cost)


def admit(catalogue, budget, estimate, now=None):
    row = {"task_uuid": f"t-{time.monotonic_ns()}", "model": "m", "positive_prompt": "p",
           "params": {}, "provider": "sandbox", "number_results": 1, "estimate": estimate,
           "status": "submitted"}
    return budgets.admit(catalogue, row, estimate, budget, now)


def test_reaching_the_limit_exactly_is_allowed(catalogue):
    spend(catalogue, 0.0094)
    message, _ = admit(catalogue, budgets.Budget(daily=0.01), 0.0006)
    assert message is None  # 0.0094 + 0.0006 == 0.01: at the limit, not past it


@pytest.mark.parametrize("over", [0.0001, 0.01])
def test_passing_the_limit_is_refused(catalogue, over):
    spend(catalogue, 0.0094)
    message, crossings = admit(catalogue, budgets.Budget(daily=0.01), 0.0006 + over)
    assert message.startswith("budget exceeded:") and "daily budget of $0.0100" in message
    assert "$0.0094 spent + $0.0000 in flight" in message and crossings == []
    assert catalogue.conn.execute("SELECT count(*) FROM tasks WHERE status = 'submitted'"
                                  ).fetchone()[0] == 0  # refused: nothing recorded


def test_in_flight_counts_estimates_minus_what_arrived(catalogue):
    budget = budgets.Budget(daily=0.01)
    add_task(catalogue, estimate=0.0030, status="submitted")
    partial = add_task(catalogue, estimate=0.0030, number_results=2, status="partial")
    add_result(catalogue, partial, utcnow(), 0.0013)
    add_task(catalogue, estimate=0.0050, status="complete")
    add_task(catalogue, estimate=0.0050, status="error")
    assert budgets.in_flight(catalogue.conn) == pytest.approx(0.0030 + 0.0017)
    status, = budgets.status(catalogue.conn, budget)
    assert (status["spent"], status["inFlight"], status["committed"]) == (0.0013, 0.0047, 0.006)
    assert admit(catalogue, budget, 0.0040)[0] is None  # exactly 0.01
    assert admit(catalogue, budget, 0.0001)[0] is not None


def test_a_result_without_cost_counts_at_its_estimate(catalogue):
    task = add_task(catalogue, estimate=0.0050, number_results=1)
    add_result(catalogue, task, utcnow(), None)
    assert budgets.status(catalogue.conn, budgets.Budget(daily=1))[0]["spent"] == 0.005


def test_periods_are_local_days_and_months(catalogue):
    # 2024-06-11 00:10 in Berlin is 2024-06-10 22:10 UTC.
    now = datetime(2024, 6, 10, 22, 10, tzinfo=timezone.utc)
    spend(catalogue, 0.0032, when=at("2024-06-10 21:30"))  # 23:30 on the 10th in Berlin
    spend(catalogue, 0.0006, when=at("2024-06-10 22:05"))  # 00:05 on the 11th in Berlin
    berlin = budgets.Budget(daily=1, monthly=1, tz=ZoneInfo("Europe/Berlin"))
    daily, monthly = budgets.status(catalogue.conn, berlin, now)
    assert (daily["key"], daily["spent"]) == ("2024-06-11", 0.0006)
    assert (monthly["key"], monthly["spent"]) == ("2024-06", 0.0038)
    utc = budgets.status(catalogue.conn, budgets.Budget(daily=1), now)[0]
    assert (utc["key"], utc["spent"]) == ("2024-06-10", 0.0038)


def test_the_monthly_limit_refuses_too(catalogue):
    spend(catalogue, 0.0100)
    message, _ = admit(catalogue, budgets.Budget(daily=1.0, monthly=0.0105), 0.0006)
    assert "monthly budget of $0.0105" in message


def test_crossings_are_recorded_once(catalogue):
    budget = budgets.Budget(daily=0.0015)
    assert admit(catalogue, budget, 0.0006)[1] == []                 # 40%
    _, crossings = admit(catalogue, budget, 0.0006)                  # 80%
    assert [(c["period"], c["threshold"]) for c in crossings] == [("daily", 0.8)]
    assert crossings[0]["committed"] == 0.0012 and crossings[0]["limit"] == 0.0015
    with catalogue.write() as conn:
        assert budgets.record_crossings(conn, budget) == []


# --- over HTTP ---------------------------------------------------------------------------


@pytest.fixture
def remote():
    """The fake provider, acking tasks after 0.2 s, and the alert URL."""
    fake = FakeProvider(delay=0.2)
    yield fake
    fake.close()


@pytest.fixture
def app_config(app_config, remote):
    return dict(app_config, RUNWARE_API_KEY="test-key", RUNWARE_API_URL=remote.url,
                RUNWARE_ARCHIVE_ALERT_URL=remote.alert_url)


def post_task(live_server, **extra):
    return requests.post(f"{live_server.url}/api/tasks", json={**PROMPT, **extra}, timeout=10)


def test_a_refusal_is_402_and_sends_nothing(app, live_server, remote):
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily=0.0005)
    response = post_task(live_server, label="client-a")
    assert response.status_code == 402
    error, = response.json()["errors"]
    assert error["code"] == "budgetExceeded" and "$0.0006" in error["message"]
    assert remote.tasks() == []
    assert requests.get(f"{live_server.url}/api/tasks", timeout=5).json()["tasks"] == []


def test_the_estimate_and_label_are_stored_and_the_label_not_sent(app, live_server, remote):
    response = post_task(live_server, label="client-a", width=1024, height=768,
                         numberResults=2)
    assert response.status_code == 202, response.text
    sent, = remote.tasks()
    assert "label" not in sent and sent["includeCost"] is True
    task = requests.get(f"{live_server.url}/api/tasks/{response.json()['taskUUID']}",
                        timeout=5).json()
    assert (task["label"], task["estimate"]) == ("client-a", 0.0012)


def test_two_concurrent_submissions_cannot_both_fit(app, live_server, remote):
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily=0.0009)  # room for one $0.0006 task
    start, answers = threading.Barrier(2), []

    def send():
        start.wait()
        answers.append(post_task(live_server))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(a.status_code for a in answers) == [202, 402]
    assert len(remote.tasks()) == 1


def test_one_alert_per_crossing(app, live_server, remote, client):
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily=0.0015)
    budget_store.set_limits(app.extensions["catalogue"], "cli", monthly=100.0)
    assert post_task(live_server).status_code == 202              # 40%
    assert remote.wait_for_alerts(1, timeout=0.3) == []
    assert post_task(live_server).status_code == 202              # 80%: one alert
    assert client.get("/costs").status_code == 200                # a look: no new alert
    assert post_task(live_server).status_code == 402              # refused: no alert
    alert, = remote.wait_for_alerts(1)
    assert (alert["type"], alert["period"], alert["threshold"]) == (
        "budgetThreshold", "daily", 0.8)
    assert (alert["limit"], alert["committed"]) == (0.0015, 0.0012)
    assert alert["periodKey"] == datetime.now(timezone.utc).date().isoformat()
    row = app.extensions["catalogue"].conn.execute(
        "SELECT alert_sent_at, alert_error FROM budget_crossings").fetchall()
    assert len(row) == 1 and row[0][0] and row[0][1] is None


def test_reaching_the_limit_sends_both_thresholds_once(app, live_server, remote):
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily=0.0012)
    for _ in range(2):
        assert post_task(live_server).status_code == 202
    assert post_task(live_server).status_code == 402
    alerts = remote.wait_for_alerts(2)
    assert sorted(a["threshold"] for a in alerts) == [0.8, 1.0]


def test_a_failing_alert_url_never_holds_up_a_submission(app, live_server, remote):
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily=0.0006)
    app.config["RUNWARE_ARCHIVE_ALERT_URL"] = "http://127.0.0.1:9/alert"  # discard port
    assert post_task(live_server).status_code == 202
    catalogue = app.extensions["catalogue"]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        rows = catalogue.conn.execute("SELECT alert_error FROM budget_crossings").fetchall()
        if rows and all(r[0] for r in rows):
            break
        time.sleep(0.05)
    assert len(rows) == 2 and all("ConnectionError" in r[0] for r in rows)


def test_the_cli_prints_the_refusal_and_exits_non_zero(data_dir, monkeypatch):
    for key in settings.DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("RUNWARE_ARCHIVE_DIR", str(data_dir))
    monkeypatch.setenv("RUNWARE_ARCHIVE_BUDGET_DAILY", "0")
    result = CliRunner().invoke(main, ["submit", "--prompt", "a lighthouse", "--no-wait"])
    assert result.exit_code == 1
    assert "error: budgetExceeded: budget exceeded: this task's estimate $0.0006" in \
        result.output
    assert "taskUUID" not in result.output


# --- where crossings are evaluated: where the costs change, never where they are shown -----


def deliver(client, app, task_uuid, cost):
    """One webhook delivery of a result costing ``cost`` (through the WSGI route)."""
    token = make_token(task_uuid, secret=app.extensions["webhook_secret"])
    return client.post(f"/webhooks/runware/{task_uuid}?token={token}",
                       json={"data": [result_of(task_uuid, cost)]})


def result_of(task_uuid, cost):
    image = str(uuid.uuid4())
    return {"taskType": "imageInference", "taskUUID": task_uuid, "imageUUID": image,
            "imageURL": f"https://im.runware.ai/image/os/a14d18/ws/2/ii/{image}.jpg",
            "seed": 1, "cost": cost}


def test_a_webhook_cost_past_80_percent_alerts_once_with_no_page_opened(app, client, remote):
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily=0.001)
    catalogue = app.extensions["catalogue"]
    task = add_task(catalogue, estimate=0.0006, number_results=2, status="submitted")
    assert deliver(client, app, task, 0.0004).status_code == 200  # 0.0004 + 0.0002: 60%
    assert remote.wait_for_alerts(1, timeout=0.3) == []
    assert deliver(client, app, task, 0.0005).status_code == 200  # 0.0009 spent: 90%
    # The crossing is evaluated on the watch's thread after the answer: wait for it, so
    # the next delivery cannot land before it and change the sum the alert reports.
    alert, = remote.wait_for_alerts(1, timeout=5.0)
    other = add_task(catalogue, estimate=0.00005, status="submitted")
    assert deliver(client, app, other, 0.00005).status_code == 200  # 95%: already alerted
    assert remote.wait_for_alerts(2, timeout=1.0) == [alert]
    assert (alert["period"], alert["threshold"], alert["limit"]) == ("daily", 0.8, 0.001)
    assert alert["committed"] == 0.0009


def test_a_sync_reply_whose_cost_crosses_alerts(app, live_server, remote):
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily=0.001)  # the estimate alone is 60%
    task_uuid = str(uuid.uuid4())
    remote.replies.append((200, {"data": [result_of(task_uuid, 0.0009)]}))
    response = post_task(live_server, taskUUID=task_uuid, deliveryMethod="sync")
    assert response.status_code in (200, 202), response.text
    alert, = remote.wait_for_alerts(1)
    assert (alert["threshold"], alert["committed"]) == (0.8, 0.0009)


def test_the_worker_alerts_a_crossing_no_one_recorded(app, remote):
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily=1.0)
    spend(app.extensions["catalogue"], 0.0009)  # written as another process would
    job, = [job for interval, job in make_fetcher(app, reconcile=False).housekeeping
            if interval == BUDGET_INTERVAL]
    job()
    assert remote.wait_for_alerts(1, timeout=0.3) == []
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily=0.001)  # the limit lowered: 90% of it
    job()
    job()  # the next minute: recorded already, not alerted again
    alert, = remote.wait_for_alerts(2, timeout=1.0)
    assert (alert["threshold"], alert["limit"], alert["committed"]) == (0.8, 0.001, 0.0009)
