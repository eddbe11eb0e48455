"""The catalogue's schema is what ``tests/fixtures/schema.sql`` records, whether a catalogue
is new or was made by any older version and upgraded.

The fixture is ``sqlite_master`` of a new catalogue (type, name, table and the exact SQL
SQLite keeps, ordered by type and name, SQLite's own ``sqlite_*`` entries left out) and
the versions ``_migrations`` records. After adding a migration, regenerate it with::

    .venv/bin/python -m tests.test_migrations

and read its diff: it is the schema change the new version makes.
"""

import difflib
from pathlib import Path

import pytest

from archive import migrations
from archive.catalogue import Catalogue

GOLDEN = Path(__file__).parent / "fixtures" / "schema.sql"
HEADER = ("-- The schema of a new catalogue, as tests/test_migrations.py reads it: a record to\n"
          "-- compare against, not a script to run. Regenerate it with\n"
          "--     .venv/bin/python -m tests.test_migrations\n")
LATEST = len(migrations.MIGRATIONS)  # how many versions there are (numbers may have gaps)
NEWEST = migrations.MIGRATIONS[-1].version


def schema(conn):
    """The normalised schema of ``conn``'s database, as the fixture spells it."""
    entries = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"
                           " WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").fetchall()
    parts = [HEADER]
    parts += [f"-- {kind} {name} on {table}\n{sql};\n" for kind, name, table, sql in entries]
    versions = conn.execute("SELECT version, name FROM _migrations ORDER BY version")
    parts.append("-- _migrations\n" + "".join(f"-- {v} {name}\n" for v, name in versions))
    return "\n".join(parts)


def catalogue_at(path, version):
    """A catalogue at ``path`` migrated with the first ``version`` migrations."""
    everything = migrations.MIGRATIONS
    migrations.MIGRATIONS = everything[:version]
    try:
        catalogue = Catalogue(path)
        assert catalogue.migrate() == everything[version - 1].version
    finally:
        migrations.MIGRATIONS = everything
    return catalogue


def assert_same_schema(actual, expected, what, of="expected"):
    """Fail with a unified diff of the two schemas, which reads better than a repr."""
    if actual != expected:
        diff = difflib.unified_diff(expected.splitlines(), actual.splitlines(), of, what,
                                    lineterm="")
        pytest.fail(f"the schema of {what} differs from {of}:\n" + "\n".join(diff),
                    pytrace=False)


def test_a_new_catalogue_has_the_recorded_schema(tmp_path):
    """If the change is intended, regenerate the fixture (see the module's docstring)."""
    actual = schema(catalogue_at(tmp_path / "new.db", LATEST).conn)
    assert_same_schema(actual, GOLDEN.read_text(encoding="utf-8"), "a new catalogue",
                       of=str(GOLDEN.relative_to(GOLDEN.parents[2])))


TASK = ("INSERT INTO tasks (task_uuid, created_at, updated_at, model, positive_prompt, params,"
        " provider, status, number_results, width, height, estimate, label, parent_task_uuid)"
        " VALUES (?, '2024-03-01T10:00:00Z', '2024-03-01T10:00:00Z', 'runware:100@1', ?, '{}',"
        " 'sandbox', 'complete', 2, 512, 512, 0.004, ?, ?)")
RESULT = ("INSERT INTO results (image_uuid, task_uuid, received_at, cost, output_kind,"
          " archive_state, starred) VALUES (?, ?, ?, ?, 'url', 'pending', ?)")
DELIVERY = ("INSERT INTO deliveries (received_at, source, task_uuid, verdict, reason, status_code,"
            " remote_addr) VALUES ('2024-03-01T10:00:02Z', 'webhook', ?, ?, ?, ?, ?)")


def seed(catalogue):
    """What later versions backfill from, in version 1's columns only: a task and a re-run of
    it (families), a costed keeper and a result without a cost at the edge of a day (the
    rollup and its summaries), an accepted and a refused delivery (counts, refusals)."""
    with catalogue.write() as conn:
        conn.execute(TASK, ("root", "a copper lighthouse", None, None))
        conn.execute(TASK, ("rerun", "a copper aviary", "kept", "root"))
        conn.execute(RESULT, ("image-1", "root", "2024-03-01T10:00:01Z", 0.002, 1))
        conn.execute(RESULT, ("image-2", "rerun", "2024-03-01T23:59:59.9999995Z", None, 0))
        conn.execute(DELIVERY, ("root", "accepted", None, 200, "10.0.0.1"))
        conn.execute(DELIVERY, (None, "rejected", "token: no such task", 401, "10.0.0.9"))


def contents(conn):
    """Every row of every table but the bookkeeping, the refusals (counted by the delivery
    log, not a trigger, so a catalogue seeded when new has none) and the search index's
    shadow tables (their pages depend on how the index was built); the index is asked."""
    tables = [name for (name,) in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'tasks_fts%'"
        " AND name NOT IN ('_migrations', 'refusals') ORDER BY name")]
    found = {name: conn.execute(f"SELECT * FROM {name} ORDER BY 1, 2").fetchall()
             for name in tables}
    found["search"] = conn.execute("SELECT t.task_uuid FROM tasks_fts JOIN tasks t ON"
                                   " t.id = tasks_fts.rowid WHERE tasks_fts MATCH 'copp*'"
                                   " ORDER BY t.id").fetchall()
    return found


@pytest.fixture(scope="module")
def seeded_when_new(tmp_path_factory):
    """Contents and schema of a catalogue that had the data written at the latest version,
    so every summary was kept by its triggers rather than backfilled."""
    catalogue = catalogue_at(tmp_path_factory.mktemp("new") / "catalogue.db", LATEST)
    seed(catalogue)
    return contents(catalogue.conn), schema(catalogue.conn)


@pytest.mark.parametrize("version", range(1, LATEST))
def test_an_older_catalogue_upgrades_to_the_new_schema_and_keeps_its_data(
        tmp_path, seeded_when_new, version):
    path = tmp_path / "catalogue.db"
    seed(catalogue_at(path, version))
    upgraded = Catalogue(path)
    assert upgraded.migrate() == NEWEST
    expected, expected_schema = seeded_when_new
    assert_same_schema(schema(upgraded.conn), expected_schema,
                       f"a catalogue upgraded from version {version}", of="a new catalogue")
    found = contents(upgraded.conn)
    assert {name: len(rows) for name, rows in found.items()} == \
        {name: len(rows) for name, rows in expected.items()}
    assert found == expected
    assert found["search"] == [("root",), ("rerun",)]
    families = upgraded.conn.execute("SELECT family_root FROM tasks ORDER BY id").fetchall()
    assert families == [("root",), ("root",)]
    refusals = upgraded.conn.execute("SELECT * FROM refusals").fetchall()
    # Version 15 backfilled the refusals from the log; a delivery refused later is counted
    # by the delivery log's code (no trigger), which this seed does not run.
    assert refusals == ([("2024-03-01T10", "token", "10.0.0.9", 1)] if version < 15 else [])


def test_a_version_landed_below_a_newer_one_is_applied_when_it_arrives(tmp_path, monkeypatch):
    """Numbers are handed out ahead of time, so 3 may ship after 5: a catalogue that has 5
    applies 3 when it arrives, and a catalogue that has both runs neither again."""
    first = migrations.MIGRATIONS[:1]
    five = migrations.Migration(5, "m005_five", "CREATE TABLE five (a);")
    three = migrations.Migration(3, "m003_three", "CREATE TABLE three (a);")
    monkeypatch.setattr(migrations, "MIGRATIONS", [*first, five])
    assert Catalogue(tmp_path / "c.db").migrate() == 5
    monkeypatch.setattr(migrations, "MIGRATIONS", [*first, three, five])
    catalogue = Catalogue(tmp_path / "c.db")
    assert catalogue.migrate() == 5
    assert migrations.applied_versions(catalogue.db) == {1, 3, 5}
    assert Catalogue(tmp_path / "c.db").migrate() == 5  # nothing left to run


def regenerate():
    """Write the schema of a new catalogue to the fixture (``python -m tests.test_migrations``)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        catalogue = catalogue_at(Path(folder) / "catalogue.db", LATEST)
        GOLDEN.write_text(schema(catalogue.conn), encoding="utf-8")
        catalogue.close()
    print(f"wrote {GOLDEN} (version {NEWEST})")


if __name__ == "__main__":
    regenerate()
