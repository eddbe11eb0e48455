"""The catalogue's schema, as SQL scripts applied in order, one per version.

``m001_core.sql``, ``m002_cost_ledger.sql``, ... hold the statements each version ran
when it shipped, as literal text: the schema is read here without running anything, and
no shared helper can change what an old version builds on a new file. Each script runs
inside one write transaction and its version is recorded in ``_migrations`` under the
script's name (the names of the functions these scripts were frozen from, so catalogues
migrated before keep matching). Add a version as the next ``mNNN_name.sql``; never edit
one that has shipped. Numbers are handed out ahead of time to work done side by side, so
they may have gaps (a later-landed lower number is applied when it arrives): a version runs
when ``_migrations`` does not record it, not when it is above the highest recorded one.
``tests/test_migrations.py`` checks a new catalogue against the
recorded schema ``tests/fixtures/schema.sql`` and says how to regenerate it.
"""

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources

# The bookkeeping table, as sqlite-utils' create(if_not_exists=True) spelled it when this
# was code, so every catalogue's copy of it reads the same.
BOOKKEEPING = """CREATE TABLE IF NOT EXISTS "_migrations" (
   "version" INTEGER PRIMARY KEY,
   "name" TEXT,
   "applied_at" TEXT
)"""

_FILE_NAME = re.compile(r"m(\d{3})_\w+\.sql")


@dataclass(frozen=True)
class Migration:
    """One version: its number, the name ``_migrations`` records, its SQL script."""

    version: int
    name: str
    sql: str

    def statements(self):
        """The script's statements one at a time, each whole: a trigger's body holds
        semicolons of its own, so a piece ends only where SQLite says one is complete."""
        pending = ""
        for piece in re.split(r"(?<=;)", self.sql):
            pending += piece
            if sqlite3.complete_statement(pending):
                yield pending
                pending = ""
        if re.sub(r"--[^\n]*", "", pending).strip():
            raise ValueError(f"{self.name}.sql ends in an unfinished statement: {pending!r}")


def _load():
    """Every ``mNNN_*.sql`` of this package, by version; a repeated number would make two
    scripts one version, so it stops the import (a gap is allowed: see the module)."""
    found = []
    for entry in resources.files(__name__).iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), entry.name[:-4],
                                   entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    numbers = [migration.version for migration in found]
    if len(set(numbers)) != len(numbers) or (numbers and numbers[0] < 1):
        raise RuntimeError(f"migration versions must be distinct and from 1 on: {numbers}")
    return found


MIGRATIONS = _load()


def current_version(db):
    """The highest applied migration, 0 for a new file."""
    if not db["_migrations"].exists():
        return 0
    row = db.conn.execute("SELECT max(version) FROM _migrations").fetchone()
    return row[0] or 0


def applied_versions(db):
    """The set of versions ``_migrations`` records (empty for a new file)."""
    if not db["_migrations"].exists():
        return set()
    return {row[0] for row in db.conn.execute("SELECT version FROM _migrations")}


# How long a process waits for another one's migration: rebuilding m011's search index
# takes about 10 s at a million results, longer than any busy timeout a webhook should use.
MIGRATION_WAIT_MS = 600_000


def _run(conn, migration):
    """One version's statements and its record. Each statement goes through execute(),
    so the whole version stays in the caller's transaction (executescript() may commit
    a pending one first, depending on the connection's transaction control)."""
    for statement in migration.statements():
        conn.execute(statement)
    conn.execute("INSERT INTO _migrations (version, name, applied_at) VALUES (?, ?, ?)",
                 (migration.version, migration.name, datetime.now(timezone.utc).isoformat()))


def apply(db, write):
    """Apply the pending migrations, each in its own transaction; returns the version.

    :param write: the catalogue's ``write`` context manager (``BEGIN IMMEDIATE``), so two
        processes starting at once serialise here and the loser sees the work done. While
        migrating, a lock is waited for up to :data:`MIGRATION_WAIT_MS`.
    """
    if {migration.version for migration in MIGRATIONS} <= applied_versions(db):
        return current_version(db)  # up to date: start without taking the write lock
    busy = db.conn.execute("PRAGMA busy_timeout").fetchone()[0]
    db.conn.execute(f"PRAGMA busy_timeout = {MIGRATION_WAIT_MS}")
    try:
        with write():
            db.conn.execute(BOOKKEEPING)
        for migration in MIGRATIONS:
            with write():
                if migration.version not in applied_versions(db):
                    _run(db.conn, migration)
    finally:
        db.conn.execute(f"PRAGMA busy_timeout = {busy}")
    return current_version(db)
