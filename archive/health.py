"""What ``/healthz`` and ``/metrics`` read from the catalogue (no Flask): the counts every
gunicorn worker must agree on, so they come from the one place all processes share."""

import sqlite3

from archive.sqlite import take_write_lock
from archive import states


def can_write(path, timeout=1.0):
    """True when a write transaction on the database at ``path`` can be had within
    ``timeout`` seconds, waited for as every write waits (:func:`take_write_lock`)."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        take_write_lock(conn)
        conn.execute("ROLLBACK")
        return True
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def queue_state(conn):
    """``(pending images, received_at of the oldest)``."""
    return conn.execute(
        "SELECT count(*), min(received_at) FROM results WHERE archive_state = 'pending'"
    ).fetchone()


def image_states(conn):
    """``{archive state: results}`` over every result: pending, archived, failed, refused."""
    pending, _ = queue_state(conn)
    troubled = dict(conn.execute(
        "SELECT archive_state, count(*) FROM results"
        " WHERE archive_state IN ('failed', 'refused') GROUP BY archive_state"))
    everything = conn.execute("SELECT count(*) FROM results").fetchone()[0]
    counts = dict(troubled)
    counts[states.PENDING] = pending
    counts[states.ARCHIVED] = everything - sum(counts.values())
    return counts


def cost_total(conn):
    """USD of every returned cost (the rollup the cost triggers keep)."""
    return conn.execute("SELECT total(cost) FROM cost_totals").fetchone()[0]
