"""SQLite helpers that every store of this project uses, the catalogue's and the sandbox's:
one way to take the write lock (cooperatively, bounded) and files private to their owner."""

import contextlib
import logging
import os
import sqlite3
import time

from archive.committer import FIRST_WAIT, LONGEST_WAIT

log = logging.getLogger(__name__)


def make_private(path):
    """Keep the SQLite file ``path`` (and its ``-wal`` and ``-shm``) to its owner, 0600 like
    the webhook secret: it holds every prompt, the delivery log and the login sessions.

    A missing file is created empty (an empty database to SQLite) with mode 0600 before
    SQLite opens it: SQLite gives the ``-wal`` and ``-shm`` it makes the main file's mode.
    A file already open to others is tightened, with a warning; no bit is ever added.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for name in (path, path + "-wal", path + "-shm"):
        _tighten(name)


def _tighten(name):
    """Take the group's and others' bits off ``name``, if it exists, saying so."""
    try:
        mode = os.stat(name).st_mode & 0o777
        if mode & 0o077:
            os.chmod(name, mode & 0o700)
            log.warning("%s was open to others (%o); now %o", name, mode, mode & 0o700)
    except FileNotFoundError:
        pass
    except OSError as exc:  # another user's, a read-only disk: SQLite may still open it
        log.warning("%s is open to others and could not be tightened: %s", name, exc)


class CatalogueBusy(sqlite3.OperationalError):
    """Another process held the write lock past the wait allowed (the web layer answers
    503 with Retry-After: nothing was written)."""


def take_write_lock(conn):
    """``BEGIN IMMEDIATE``, waiting for another process's lock as the webhook's writer
    does (:mod:`archive.committer`): in short sleeps, for as long as the connection's
    ``busy_timeout`` allows, never in SQLite's busy handler. That one sleeps inside C, and
    under gevent (which makes ``time.sleep`` a yield) it stopped every request of the
    worker while a lock was held.

    :raises CatalogueBusy: the lock was not had in time.
    """
    budget_ms = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        deadline, wait = time.monotonic() + budget_ms / 1000, FIRST_WAIT
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise CatalogueBusy(f"the catalogue was busy for {budget_ms} ms") from exc
            time.sleep(wait)
            wait = min(wait * 2, LONGEST_WAIT)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(budget_ms)}")


@contextlib.contextmanager
def immediate(conn):
    """One write transaction on an autocommit connection, taken with ``BEGIN IMMEDIATE``
    (:func:`take_write_lock`) so it never deadlocks on upgrade; committed on success,
    rolled back on any exception."""
    take_write_lock(conn)
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
