"""Reconciliation knows "not found" from "failed": ``taskNotFound``, ``taskExpired`` and
``taskFailedOrNotFound`` from ``getResponse`` say nothing about the generation, so the task
keeps its state and is asked again until the window closes; then it is ``lost``. Against
the fake provider over loopback, whose answers the test scripts, and the sandbox, which
answers ``taskNotFound`` for a task it never saw."""

import uuid

import pytest
from click.testing import CliRunner

from archive import budgets
from receiver.cli import main
from receiver.provider.reconcile import reconcile
from tests.fakes import provider  # noqa: F401  (the fixture)
from tests.test_webhooks import make_task, result_for

NOT_FOUND_CODES = ["taskNotFound", "taskExpired", "taskFailedOrNotFound"]


@pytest.fixture
def catalogue(app):
    return app.extensions["catalogue"]


def backdate(catalogue, task_uuid, created_at):
    with catalogue.write() as conn:
        conn.execute("UPDATE tasks SET created_at = ?, acknowledged_at = ?, estimate = 0.01"
                     " WHERE task_uuid = ?", (created_at, created_at, task_uuid))


def not_found(task_uuid, code):
    return {"data": [], "errors": [{"code": code, "message": "no such task",
                                    "taskType": "getResponse", "taskUUID": task_uuid}]}


class TestWithTheFakeProvider:
    @pytest.fixture
    def app_config(self, app_config, provider):
        return dict(app_config, RUNWARE_API_KEY="test-key", RUNWARE_API_URL=provider.url)

    @pytest.mark.parametrize("code", NOT_FOUND_CODES)
    def test_not_found_is_no_information(self, app, catalogue, provider, code):
        task = make_task(catalogue, number_results=2)
        provider.replies += [(200, not_found(task, code)), (200, not_found(task, code))]
        first = reconcile(app, after=0)
        assert first.asked == [task] and first.not_found == [task]
        row = catalogue.get_task(task)
        assert (row["status"], row["errors_received"], row["error_code"]) == (
            "submitted", 0, None)
        with catalogue.write() as conn:  # the interval has passed
            conn.execute("UPDATE tasks SET reconciled_at = NULL")
        assert reconcile(app, after=0).asked == [task]  # asked again, not given up

    def test_a_real_failure_from_get_response_is_stored(self, app, catalogue, provider):
        task = make_task(catalogue, number_results=1)
        provider.replies.append((200, {"data": [], "errors": [{
            "code": "timeoutProvider", "message": "slow", "status": "error",
            "taskUUID": task}]}))
        assert reconcile(app, after=0).new_errors == 1
        assert catalogue.get_task(task)["status"] == "error"

    def test_an_error_by_webhook_and_by_get_response_counts_once(self, app, catalogue,
                                                                 provider, sender):
        task = make_task(catalogue, number_results=2)
        sender.post(task, {"taskUUID": task, "status": "error",
                           "error": {"code": "timeoutProvider", "message": "slow"}})
        sender.result(task, result_for(task))
        provider.replies.append((200, {"data": [], "errors": [{
            "code": "timeoutProvider", "message": "slow", "status": "error", "taskUUID": task,
            "documentation": "https://runware.ai/docs/platform/errors"}]}))
        with catalogue.write() as conn:  # make it look incomplete so it is asked for
            conn.execute("UPDATE tasks SET status = 'partial', errors_received = 0")
        report = reconcile(app, after=0)
        assert report.asked == [task] and report.new_errors == 0
        assert len(catalogue.get_task(task)["failures"]) == 1

    def test_a_task_unknown_past_the_window_is_lost(self, app, catalogue, provider):
        task = make_task(catalogue, number_results=2)
        backdate(catalogue, task, "2020-01-01T00:00:00.000000Z")
        assert budgets.in_flight(catalogue.conn) == pytest.approx(0.01)
        report = reconcile(app, after=0)
        assert report.asked == [] and report.lost == [task]  # too old to ask: named
        row = catalogue.get_task(task)
        assert (row["status"], row["error_code"]) == ("lost", "lost")
        assert budgets.in_flight(catalogue.conn) == 0  # its estimate left "in flight"
        assert reconcile(app, after=0).lost == []  # said once
        catalogue.ingest(task, results=[result_for(task), result_for(task)])  # late, still taken
        assert catalogue.get_task(task)["status"] == "complete"

    def test_the_command_names_lost_tasks(self, app, catalogue, provider):
        task = make_task(catalogue, number_results=1)
        backdate(catalogue, task, "2020-01-01T00:00:00.000000Z")
        out = CliRunner().invoke(main, ["reconcile"], env={
            "RUNWARE_ARCHIVE_DIR": app.config["RUNWARE_ARCHIVE_DIR"],
            "RUNWARE_API_KEY": "test-key", "RUNWARE_API_URL": provider.url})
        assert out.exit_code == 0, out.output
        assert f"lost: task {task}" in out.output


def test_the_sandbox_answers_task_not_found_and_the_task_keeps_its_state(app, live_server):
    catalogue = app.extensions["catalogue"]
    ghost = str(uuid.uuid4())
    catalogue.create_task({
        "task_uuid": ghost, "model": "runware:twinflow-z-image-turbo@0",
        "positive_prompt": "never sent", "params": {"taskUUID": ghost}, "provider": "sandbox",
        "number_results": 1, "status": "submitted", "acknowledged_at": "2026-01-01T00:00:00Z"})
    report = reconcile(app, after=0)
    assert report.asked == [ghost] and report.not_found == [ghost]
    assert catalogue.get_task(ghost)["status"] == "submitted"
