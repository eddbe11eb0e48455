"""Budgets that bind every process: kept in the catalogue (archive.budget_store), set from the
environment, the CLI and /costs, obeyed by the server and by ``runware-archive submit`` from
another shell. The cross-process tests run the installed command as real subprocesses on one
real data folder, with the sandbox as the provider."""

import re
import subprocess

import pytest
import requests

from archive import budget_store, budgets
from archive.catalogue import Catalogue
from tests.test_sandbox_e2e import BIN, Process, read_only, start  # noqa: F401 (fixture)
from tests.views_helpers import csrf, text


@pytest.fixture
def cat(tmp_path, migrated_copy):
    catalogue = Catalogue(migrated_copy(tmp_path / "catalogue.db"))
    catalogue.migrate()
    return catalogue


def test_limits_are_set_cleared_and_checked(cat):
    assert budget_store.limits(cat.conn) == (None, None)
    budget_store.set_limits(cat, "cli", daily=0.04, monthly="2")
    assert budget_store.limits(cat.conn) == (0.04, 2.0)
    budget_store.set_limits(cat, "ui", daily=None)
    assert budget_store.limits(cat.conn) == (None, 2.0)
    assert budget_store.stored(cat.conn)["daily"]["source"] == "ui"
    for bad in ("-1", "nan", "inf", "x", -0.5):
        with pytest.raises(ValueError):
            budget_store.set_limits(cat, "cli", daily=bad)
    with pytest.raises(ValueError):
        budget_store.set_limits(cat, "cli", weekly=1)
    assert budget_store.limits(cat.conn) == (None, 2.0)  # a refused change changes nothing


def test_the_environment_sets_a_limit_only_when_it_changed(cat):
    env = {"RUNWARE_ARCHIVE_BUDGET_DAILY": 0.04}
    assert budget_store.apply_environment(cat, env) == ["daily"]
    assert budget_store.limits(cat.conn) == (0.04, None)
    budget_store.set_limits(cat, "cli", daily=0.5)  # changed afterwards, by hand
    assert budget_store.apply_environment(cat, env) == []  # a restart, the same environment
    assert budget_store.limits(cat.conn) == (0.5, None)
    assert budget_store.apply_environment(cat, {"RUNWARE_ARCHIVE_BUDGET_DAILY": "0.02"}) == ["daily"]
    assert budget_store.limits(cat.conn) == (0.02, None)  # the variable edited: it wins
    assert budget_store.apply_environment(cat, {}) == []  # taken away: the limit stays
    assert budget_store.limits(cat.conn) == (0.02, None)
    with pytest.raises(ValueError):
        budget_store.apply_environment(cat, {"RUNWARE_ARCHIVE_BUDGET_MONTHLY": "-3"})


def test_admission_reads_the_stored_limit_under_its_lock(cat):
    """A budget read before another process lowered the limit still refuses: admit()
    reads the limits again inside its write transaction."""
    read_early = budgets.current(cat.conn, {})
    assert not read_early.active
    budget_store.set_limits(cat, "cli", daily=0.0005)
    row = {"task_uuid": "t-1", "model": "m", "positive_prompt": "p", "params": {},
           "provider": "sandbox", "status": "submitted", "number_results": 1,
           "estimate": 0.0006}
    message, _ = budgets.admit(cat, dict(row, created_at="2026-01-01T00:00:00Z",
                                         updated_at="2026-01-01T00:00:00Z"), 0.0006, read_early)
    assert message and message.startswith("budget exceeded")
    assert cat.conn.execute("SELECT count(*) FROM tasks WHERE task_uuid = 't-1'").fetchone()[0] == 0


def test_the_costs_form_sets_and_clears_with_csrf(client, app):
    assert client.post("/costs/budget", data={"daily": "1"}).status_code == 400  # no token
    token = csrf(client, "/costs")
    response = client.post("/costs/budget", data={"csrf_token": token, "daily": "$0.04",
                                                  "monthly": ""})
    assert response.status_code == 303 and response.headers["Location"].endswith("/costs#budgets")
    catalogue = app.extensions["catalogue"]
    assert budget_store.limits(catalogue.conn) == (0.04, None)
    page = text(client.get("/costs"))
    assert 'name="daily"' in page and 'value="0.04"' in page and "set on this page" in page
    assert "Budgets set: daily $0.0400, monthly none" in page
    assert budget_store.stored(catalogue.conn).get("monthly") is None  # untouched: not written
    response = client.post("/costs/budget", data={"csrf_token": token, "daily": "0.04"},
                           follow_redirects=True)
    assert "Budgets unchanged: daily $0.0400, monthly none" in text(response)
    response = client.post("/costs/budget", data={"csrf_token": token, "daily": "lots"},
                           follow_redirects=True)
    assert "Budgets not changed: a budget is a number of USD" in text(response)
    assert budget_store.limits(catalogue.conn) == (0.04, None)


def run_cli(service, *args):
    """``runware-archive ARGS`` in another process, in the service's folder, with no
    RUNWARE_* variable (another shell)."""
    return subprocess.run([str(BIN / "runware-archive"), *args], cwd=service.cwd,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(service.cwd)},
                          capture_output=True, text=True, timeout=120)


def submit_cli(service):
    return run_cli(service, "submit", "--prompt", "a harbor at dusk", "--no-wait")


def api_submit(service):
    return requests.post(f"{service.url}/api/tasks", json={"positivePrompt": "a harbor"},
                         timeout=60)


@pytest.mark.skipif(not (BIN / "runware-archive").exists(), reason="not installed")
def test_a_budget_set_by_the_cli_binds_a_submit_from_another_shell_and_the_api(start):
    service = start([BIN / "runware-archive", "serve", "--port", "{port}"])
    set_it = run_cli(service, "budget", "set", "--daily", "0.0009")  # room for one $0.0006 task
    assert set_it.returncode == 0 and "daily: $0.0009, set by the CLI" in set_it.stdout
    first = submit_cli(service)
    assert first.returncode == 0, first.stderr
    second = submit_cli(service)
    assert second.returncode == 1 and "budget exceeded" in second.stderr, second
    assert "taskUUID" not in second.stdout
    refused = api_submit(service)  # the server obeys what the CLI set, without a restart
    assert refused.status_code == 402 and "budget exceeded" in refused.text
    with read_only(service.cwd / "runware-archive-data" / "catalogue.db") as db:
        assert db.execute("SELECT count(*) FROM tasks").fetchone()[0] == 1
    assert run_cli(service, "budget", "set", "--daily", "1").returncode == 0
    assert api_submit(service).status_code == 202
    cleared = run_cli(service, "budget", "clear")
    assert "daily: no budget (cleared by the CLI" in cleared.stdout
    assert submit_cli(service).returncode == 0


@pytest.mark.skipif(not (BIN / "runware-archive").exists(), reason="not installed")
def test_the_servers_environment_and_its_form_bind_another_shell(start):
    """The complaint itself: a daily budget in the server's environment let
    ``runware-archive submit`` from another shell spend past it."""
    service = start([BIN / "runware-archive", "serve", "--port", "{port}"],
                    {"RUNWARE_ARCHIVE_BUDGET_DAILY": "0.0005"})
    refused = submit_cli(service)
    assert refused.returncode == 1 and "budget exceeded" in refused.stderr
    shown = run_cli(service, "budget", "show").stdout
    assert "daily: $0.0005, set from RUNWARE_ARCHIVE_BUDGET_DAILY" in shown
    browser = requests.Session()
    page = browser.get(f"{service.url}/costs", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    answer = browser.post(f"{service.url}/costs/budget", timeout=30, allow_redirects=False,
                          data={"csrf_token": token, "daily": "0.0009", "monthly": ""})
    assert answer.status_code == 303
    assert submit_cli(service).returncode == 0  # the page's limit binds the other shell
    assert submit_cli(service).returncode == 1
