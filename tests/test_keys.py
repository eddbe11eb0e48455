"""Client keys: made once and stored hashed, found by the hash, revoked, listed with their
spend; a key's own budgets checked with the archive's in one admission; the CLI."""

import hashlib
import threading
import time

import pytest
from click.testing import CliRunner

from archive import budgets, keys
from archive.catalogue import Catalogue, utcnow
from receiver import config as settings
from receiver.cli import main
from tests.costs_helpers import add_result


@pytest.fixture
def catalogue(tmp_path, migrated_copy):
    cat = Catalogue(migrated_copy(tmp_path / "catalogue.db"))
    cat.migrate()
    return cat


def admit(catalogue, key, estimate, budget=None):
    row = {"task_uuid": f"t-{time.monotonic_ns()}", "model": "m", "positive_prompt": "p",
           "params": {}, "provider": "sandbox", "number_results": 1, "estimate": estimate,
           "status": "submitted", "key_id": key["id"], "label": key["label"]}
    message, _ = budgets.admit(catalogue, row, estimate, budget, key=key)
    return message, row["task_uuid"]


def test_a_key_is_stored_as_its_hash_and_found_by_it(catalogue):
    row, secret = keys.create(catalogue, "batch job", daily=1.5)
    assert secret.startswith("rwa_") and len(secret) >= 4 + 43
    stored = catalogue.conn.execute("SELECT * FROM client_keys").fetchall()
    assert secret not in repr(stored)
    assert hashlib.sha256(secret.encode()).hexdigest() in repr(stored)
    found = keys.authenticate(catalogue.conn, secret)
    assert (found["id"], found["label"], found["daily_budget"]) == (row["id"], "batch job", 1.5)
    assert found["monthly_budget"] is None and "key_hash" not in found


@pytest.mark.parametrize("presented", ["", "rwa_", "rwa_nope", None, 42, "sk-runware"])
def test_unknown_keys_are_refused(catalogue, presented):
    keys.create(catalogue, "one")
    assert keys.authenticate(catalogue.conn, presented) is None


def test_a_revoked_key_is_refused_and_still_listed(catalogue):
    row, secret = keys.create(catalogue, "old")
    assert keys.revoke(catalogue, row["id"]) and not keys.revoke(catalogue, row["id"])
    assert keys.authenticate(catalogue.conn, secret) is None
    listed, = keys.list_keys(catalogue.conn)
    assert listed["revoked_at"] and listed["label"] == "old"


def test_a_keys_spend_is_what_its_tasks_cost(catalogue):
    one, _ = keys.create(catalogue, "one")
    two, _ = keys.create(catalogue, "two")
    _, task = admit(catalogue, one, 0.002)
    add_result(catalogue, task, utcnow(), 0.0013)
    add_result(catalogue, task, utcnow(), 0.0006)
    listed = {k["label"]: k for k in keys.list_keys(catalogue.conn)}
    assert listed["one"]["spend"] == pytest.approx(0.0019) and listed["one"]["tasks"] == 1
    assert listed["two"]["spend"] == 0 and listed["two"]["tasks"] == 0


def test_a_key_is_refused_past_its_own_daily_budget(catalogue):
    key, _ = keys.create(catalogue, "capped", daily=0.01)
    other, _ = keys.create(catalogue, "free")
    _, task = admit(catalogue, key, 0.006)
    add_result(catalogue, task, utcnow(), 0.006)  # spent 0.006, nothing in flight
    assert admit(catalogue, key, 0.004)[0] is None  # exactly at the limit
    message, refused = admit(catalogue, key, 0.0001)
    assert "key 'capped'" in message and "daily budget of $0.0100" in message
    assert catalogue.get_task(refused) is None  # nothing recorded
    assert admit(catalogue, other, 5.0)[0] is None  # the other key has no limit


def test_the_archives_budget_still_applies_to_a_key(catalogue):
    key, _ = keys.create(catalogue, "roomy", monthly=100)
    message, _ = admit(catalogue, key, 0.02, budgets.Budget(daily=0.01))
    assert message.startswith("budget exceeded") and "the daily budget" in message


def test_the_monthly_budget_counts_in_flight_tasks(catalogue):
    key, _ = keys.create(catalogue, "monthly", monthly=0.01)
    assert admit(catalogue, key, 0.008)[0] is None  # submitted: in flight at its estimate
    message, _ = admit(catalogue, key, 0.003)
    assert "monthly budget" in message


def test_two_admissions_cannot_share_a_keys_last_room(tmp_path, migrated_copy):
    path = migrated_copy(tmp_path / "catalogue.db")
    key, _ = keys.create(Catalogue(path), "race", daily=0.01)
    answers, start = [], threading.Barrier(2)

    def one():
        start.wait()
        answers.append(admit(Catalogue(path), key, 0.006)[0])  # a connection of its own

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert sorted(a is None for a in answers) == [False, True]


def test_the_cli_creates_lists_and_revokes(data_dir, monkeypatch):
    for name in settings.DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RUNWARE_ARCHIVE_DIR", str(data_dir))
    runner = CliRunner()
    made = runner.invoke(main, ["keys", "create", "--label", "notebook",
                                "--daily-budget", "2", "--monthly-budget", "20"])
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[-1]
    assert secret.startswith("rwa_") and " " not in secret
    catalogue = Catalogue(data_dir / "catalogue.db")
    key = keys.authenticate(catalogue.conn, secret)
    assert (key["label"], key["daily_budget"], key["monthly_budget"]) == ("notebook", 2, 20)
    listed = runner.invoke(main, ["keys", "list"])
    assert "notebook" in listed.output and "$2.0000" in listed.output
    assert secret not in listed.output
    assert runner.invoke(main, ["keys", "revoke", str(key["id"])]).exit_code == 0
    assert keys.authenticate(catalogue.conn, secret) is None
    again = runner.invoke(main, ["keys", "revoke", str(key["id"])])
    assert again.exit_code != 0 and "no live key" in again.output
    assert runner.invoke(main, ["keys", "create", "--label", " "]).exit_code != 0


def test_a_keys_spend_counts_by_when_results_came(catalogue):
    key, _ = keys.create(catalogue, "dated", daily=0.01)
    _, old = admit(catalogue, key, 0.004)
    add_result(catalogue, old, "2020-01-01T10:00:00.000000Z", 0.004)  # another day
    _, costless = admit(catalogue, key, 0.006)
    add_result(catalogue, costless, utcnow(), None)  # no cost: counted at its estimate
    with catalogue.write() as conn:
        conn.execute("UPDATE tasks SET status = 'complete' WHERE key_id = ?", (key["id"],))
    midnight = budgets.periods(budgets.Budget(daily=1))[0][3]
    assert keys.committed(catalogue.conn, key["id"], midnight) == pytest.approx(0.006)
    assert admit(catalogue, key, 0.004)[0] is None
    assert admit(catalogue, key, 0.0001)[0] is not None
