"""Runware's books beside ours, on the sandbox over real loopback HTTP: a normal day shows no
difference; a task whose every webhook was dropped shows exactly its cost as the difference
and is named, until getTaskDetails recovers it; the balance falls by what was spent; spend
with another API key is told apart; the alerts post."""

import json
import time
import uuid
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from archive.pricing import cost_per_image
from protocol.schemas import MODEL_ID, load_submission
from receiver.cli import main
from receiver.provider import books as books_pass
from receiver.provider.reconcile import reconcile
from receiver.provider.submit import submit_in_app
from tests.fakes import provider  # noqa: F401  (the fixture: here, the alert URL)

PRICE = cost_per_image(512, 384, 4)
PASSWORD = "books-password"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "RUNWARE_SANDBOX_RESULT_DELAY": 0.01,
            "RUNWARE_SANDBOX_RETRY_BASE": 0.01, "RUNWARE_SANDBOX_RETRY_CAP": 0.02,
            "RUNWARE_SANDBOX_MAX_ATTEMPTS": 3, "RUNWARE_SANDBOX_BALANCE": 10.0}


@pytest.fixture
def catalogue(app):
    return app.extensions["catalogue"]


def submit(app, n=1, faults=None):
    """Submit one task through the archive (async, with its webhook); its taskUUID."""
    app.config["RUNWARE_SANDBOX_FAULTS"] = faults
    params = load_submission({"positivePrompt": "a lighthouse at dawn", "width": 512,
                              "height": 384, "steps": 4, "numberResults": n,
                              "taskUUID": str(uuid.uuid4()), "model": MODEL_ID})
    try:
        submission = submit_in_app(app, params)
    finally:
        app.config["RUNWARE_SANDBOX_FAULTS"] = None
    assert submission.http_status == 202, submission
    return submission.task_uuid


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def complete(catalogue, task_uuid):
    wait_for(lambda: catalogue.get_task(task_uuid)["status"] == "complete")


def generated(app, task_uuid):
    """Wait until the sandbox has finished every image of the task (and so charged it)."""
    state = app.extensions["sandbox"]
    wait_for(lambda: all(i.ready_at <= state.clock() for i in state.items(task_uuid)))


def today():
    return datetime.now(timezone.utc).date().isoformat()


def day_of(result):
    [day] = [d for d in result["days"] if d.date == today()]
    return day


def test_a_normal_day_has_no_difference(app, live_server, catalogue):
    task = submit(app, n=2)
    complete(catalogue, task)
    result = books_pass.run(app)
    day = day_of(result)
    assert day.archive == pytest.approx(2 * PRICE)
    assert (day.difference, day.missing, day.other_keys) == (0.0, [], 0.0)
    assert len(result["days"]) == 7  # the last seven local days by default
    assert result["account"]["problem"] is None


def test_a_task_whose_every_webhook_was_dropped_is_its_cost_until_recovered(
        app, live_server, catalogue):
    kept = submit(app)
    complete(catalogue, kept)
    lost = submit(app, n=3, faults="drop=1,forget=0")
    generated(app, lost)
    day = day_of(books_pass.run(app))
    assert day.difference == pytest.approx(3 * PRICE, abs=1e-9)  # exactly its cost
    assert day.missing == [lost]
    assert day.missing_estimate == pytest.approx(3 * PRICE)
    attempts = app.extensions["sandbox"].attempts()
    assert attempts and all("fault drop" in (a["error"] or "") for a in attempts
                            if a["kind"] == "webhook" and a["image_uuid"] in
                            {i.image_uuid for i in app.extensions["sandbox"].items(lost)})

    report = reconcile(app, after=0)
    assert report.not_found == [lost] and report.recovered == [lost]
    assert report.new_results == 3
    row = catalogue.get_task(lost)
    assert row["status"] == "complete" and row["cost"] == pytest.approx(3 * PRICE)
    sources = {r[0] for r in catalogue.conn.execute(
        "SELECT source FROM deliveries WHERE task_uuid = ?", (lost,))}
    assert sources == {"taskDetails"}

    after = day_of(books_pass.run(app))
    assert (after.difference, after.missing, after.recovered) == (0.0, [], [lost])


def test_the_balance_falls_by_what_was_spent(app, live_server, catalogue):
    before = books_pass.run(app)["account"]["balance"]
    assert before == 10.0
    for n in (1, 4):
        complete(catalogue, submit(app, n=n))
    result = books_pass.run(app)
    assert result["account"]["balance"] == pytest.approx(10.0 - 5 * PRICE)
    assert result["account"]["burn_7_days"] == pytest.approx(5 * PRICE)
    assert result["account"]["runway_days"] == pytest.approx(
        (10.0 - 5 * PRICE) / (5 * PRICE / 7), abs=0.1)


class TestOtherKeys:
    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "RUNWARE_ARCHIVE_UI_PASSWORD": PASSWORD}

    def test_spend_with_another_key_is_told_apart(self, app, live_server, catalogue):
        import requests
        complete(catalogue, submit(app))
        other = requests.post(live_server.url + "/sandbox/v1", json=[{
            "taskType": "imageInference", "taskUUID": str(uuid.uuid4()), "model": MODEL_ID,
            "positivePrompt": "another tool's picture", "width": 512, "height": 384,
            "steps": 4}], headers={"Authorization": f"Bearer {PASSWORD}"}, timeout=10)
        assert other.status_code == 200
        day = day_of(books_pass.run(app))
        assert day.difference == pytest.approx(PRICE) and day.other_keys == pytest.approx(PRICE)
        assert day.missing == []


class TestAlerts:
    @pytest.fixture
    def app_config(self, app_config, provider):
        return {**app_config, "RUNWARE_ARCHIVE_ALERT_URL": provider.alert_url,
                "RUNWARE_ARCHIVE_BOOKS_THRESHOLD": 0.0001,
                "RUNWARE_ARCHIVE_BALANCE_ALERT": 20.0}

    def test_a_difference_past_the_threshold_and_a_low_balance_post_once(
            self, app, live_server, catalogue, provider):
        lost = submit(app, n=2, faults="drop=1")
        generated(app, lost)
        books_pass.run(app)
        alerts = provider.wait_for_alerts(2)
        kinds = {a["type"]: a for a in alerts}
        assert set(kinds) == {"booksDifference", "balanceLow"}
        assert kinds["booksDifference"]["tasks"] == [lost]
        assert kinds["booksDifference"]["difference"] == pytest.approx(2 * PRICE)
        assert kinds["balanceLow"]["balance"] == pytest.approx(10.0 - 2 * PRICE)
        books_pass.run(app)  # the same day again: nothing new to say
        assert len(provider.wait_for_alerts(3, timeout=0.5)) == 2
        sent = catalogue.conn.execute(
            "SELECT count(*) FROM books_alerts WHERE alert_sent_at IS NOT NULL").fetchone()[0]
        assert sent == 2


def test_the_command_prints_the_books_as_json(app, live_server, catalogue):
    task = submit(app)
    complete(catalogue, task)
    lost = submit(app, faults="drop=1")
    generated(app, lost)
    out = CliRunner().invoke(main, ["books", "--json", "--from", today()],
                             env={"RUNWARE_ARCHIVE_DIR": app.config["RUNWARE_ARCHIVE_DIR"]})
    assert out.exit_code == 0, out.output
    body = json.loads(out.output)
    assert set(body) == {"days", "balance", "runwayDays"}
    [day] = body["days"]
    assert set(day) == {"date", "archive", "runware", "difference", "tasks"}
    assert (day["date"], day["tasks"]) == (today(), [lost])
    assert day["difference"] == pytest.approx(PRICE)
    assert body["balance"] == pytest.approx(10.0 - 2 * PRICE)
    text = CliRunner().invoke(main, ["books"], env={
        "RUNWARE_ARCHIVE_DIR": app.config["RUNWARE_ARCHIVE_DIR"]})
    assert text.exit_code == 0 and lost in text.output and "days left" in text.output


def test_the_command_refuses_a_bad_range(app):
    out = CliRunner().invoke(main, ["books", "--from", "2026-02-01", "--to", "2026-01-01"],
                             env={"RUNWARE_ARCHIVE_DIR": app.config["RUNWARE_ARCHIVE_DIR"]})
    assert out.exit_code == 2 and "must not be before --from" in out.output
    out = CliRunner().invoke(main, ["books", "--from", "yesterday"],
                             env={"RUNWARE_ARCHIVE_DIR": app.config["RUNWARE_ARCHIVE_DIR"]})
    assert out.exit_code == 2
    out = CliRunner().invoke(main, ["books", "--from", "2020-01-01", "--to", "2026-01-01"],
                             env={"RUNWARE_ARCHIVE_DIR": app.config["RUNWARE_ARCHIVE_DIR"]})
    assert out.exit_code == 2 and "at most 366 days" in out.output
    out = CliRunner().invoke(main, ["books", "--from", "2999-01-01"],
                             env={"RUNWARE_ARCHIVE_DIR": app.config["RUNWARE_ARCHIVE_DIR"]})
    assert out.exit_code == 2 and "must not be after today" in out.output
    assert app.extensions["catalogue"].conn.execute(
        "SELECT count(*) FROM books_days").fetchone()[0] == 0  # nothing asked, nothing kept


def test_stats_says_the_days_left(app, live_server, catalogue):
    env = {"RUNWARE_ARCHIVE_DIR": app.config["RUNWARE_ARCHIVE_DIR"]}
    assert "balance: not known yet" in CliRunner().invoke(main, ["stats"], env=env).output
    complete(catalogue, submit(app, n=2))
    books_pass.run(app)
    out = CliRunner().invoke(main, ["stats"], env=env)
    assert out.exit_code == 0, out.output
    runway = (10.0 - 2 * PRICE) / (2 * PRICE / 7)
    assert f"Runware balance ${10.0 - 2 * PRICE:.4f} USD" in out.output
    assert f"about {runway:,.1f} days left" in out.output


def test_the_worker_runs_the_books(app, live_server, catalogue):
    import threading
    from archive import books
    from receiver.worker import make_fetcher
    complete(catalogue, submit(app))
    stop = threading.Event()
    thread = threading.Thread(target=make_fetcher(app).run, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: books.stored_account(catalogue.conn) is not None)
    finally:
        stop.set()
        thread.join(10)
    assert books.stored_account(catalogue.conn)["balance"] == pytest.approx(10.0 - PRICE)
    assert [d.difference for d in books.stored_days(catalogue.conn, today(), today())] == [0.0]


class TestAnotherTimeZone:
    ZONE = "Pacific/Kiritimati"  # UTC+14: its date is not UTC's for most of the day

    @pytest.fixture
    def app_config(self, app_config):
        return {**app_config, "RUNWARE_ARCHIVE_TIMEZONE": self.ZONE}

    def test_both_sides_cut_the_day_at_the_local_midnight(self, app, live_server, catalogue):
        from zoneinfo import ZoneInfo
        complete(catalogue, submit(app))
        local = datetime.now(ZoneInfo(self.ZONE)).date().isoformat()
        days = {d.date: d for d in books_pass.run(app)["days"]}
        assert days[local].archive == pytest.approx(PRICE)
        assert days[local].runware == pytest.approx(PRICE)
        assert days[local].difference == 0.0
        assert sum(d.runware for d in days.values()) == pytest.approx(PRICE)


def test_a_new_price_moves_no_past_estimate(app, live_server, catalogue, monkeypatch):
    from datetime import timedelta
    from archive import pricing
    first = submit(app, n=2)
    assert catalogue.get_task(first)["estimate"] == pytest.approx(2 * PRICE)
    now = datetime.now(timezone.utc).date()
    listed = pricing.PRICE_LIST[pricing.MODEL]
    monkeypatch.setitem(pricing.PRICE_LIST, pricing.MODEL, listed + (
        ((now + timedelta(days=1)).isoformat(), "0.0100"),))  # announced for tomorrow
    second = submit(app, n=2)
    assert catalogue.get_task(second)["estimate"] == pytest.approx(2 * PRICE)
    monkeypatch.setitem(pricing.PRICE_LIST, pricing.MODEL, listed + (
        (now.isoformat(), "0.0100"),))  # in force from today
    third = submit(app, n=2)
    assert catalogue.get_task(third)["estimate"] == pytest.approx(0.02)
    assert catalogue.get_task(first)["estimate"] == pytest.approx(2 * PRICE)  # unmoved
