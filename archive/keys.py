"""Client keys for the Runware-compatible endpoint (schema: migration 16), no Flask.

A key is ``rwa_`` and 32 random bytes, URL-safe base64: shown once, when it is made, and
never kept. The catalogue holds its SHA-256 only. A key that random needs no slow hash (no
dictionary guesses it), and finding the row *by* the hash means the secret is never
compared byte by byte, so no timing tells how much of a guess was right.

A key carries a label (what its tasks are labelled, so the history and the costs group by
it) and, optionally, its own daily and monthly budgets in USD, checked on its own tasks
beside the archive's budgets (:func:`archive.budgets.admit`, with :func:`committed`), and
the hosts its tasks' own ``webhookURL`` may name (:mod:`archive.relay`, migration 18).
Revoking keeps the row, so the tasks made with it keep their key and spend.
"""

import hashlib
import json
import secrets

from archive import relay
from archive.records import rows, utcnow

PREFIX = "rwa_"
SECRET_BYTES = 32
FIELDS = "id, label, daily_budget, monthly_budget, created_at, revoked_at, relay_hosts"


def key_hash(secret):
    """The stored form of a key: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create(catalogue, label, *, daily=None, monthly=None, relay_hosts=()):
    """Make a key; returns ``(row, secret)``. The secret is in nothing else: show it once.

    :param relay_hosts: ``https://host[:port]`` / ``http://host[:port]`` entries
        (:func:`archive.relay.parse_hosts`); :raises ValueError: one is not such an entry.
    """
    if not label or not label.strip():
        raise ValueError("a key needs a label")
    for name, value in (("daily", daily), ("monthly", monthly)):
        if value is not None and value < 0:
            raise ValueError(f"the {name} budget must not be negative")
    hosts = relay.parse_hosts(relay_hosts)
    secret = PREFIX + secrets.token_urlsafe(SECRET_BYTES)
    with catalogue.write() as conn:
        cur = conn.execute(
            "INSERT INTO client_keys (key_hash, label, daily_budget, monthly_budget,"
            " created_at, relay_hosts) VALUES (?, ?, ?, ?, ?, ?)",
            (key_hash(secret), label.strip(), daily, monthly, utcnow(),
             json.dumps(hosts) if hosts else None))
        row = rows(conn, f"SELECT {FIELDS} FROM client_keys WHERE id = ?", (cur.lastrowid,))
    return row[0], secret


def authenticate(conn, presented):
    """The live key ``presented`` is (``id``, ``label``, budgets), or None for a key that
    is unknown, revoked, or not a key at all."""
    if not isinstance(presented, str) or not presented.startswith(PREFIX):
        return None
    found = rows(conn, f"SELECT {FIELDS} FROM client_keys WHERE key_hash = ?"
                       " AND revoked_at IS NULL", (key_hash(presented),))
    return found[0] if found else None


def revoke(catalogue, key_id):
    """Revoke key ``key_id`` from now on; whether a live key was revoked."""
    with catalogue.write() as conn:
        cur = conn.execute("UPDATE client_keys SET revoked_at = ? WHERE id = ?"
                           " AND revoked_at IS NULL", (utcnow(), key_id))
    return cur.rowcount == 1


def list_keys(conn):
    """Every key, oldest first, with ``spend`` (USD its tasks cost so far) and ``tasks``."""
    return rows(conn, "SELECT k.id, k.label, k.daily_budget, k.monthly_budget,"
                      " k.created_at, k.revoked_at, k.relay_hosts, total(t.cost) AS spend,"
                      " count(t.id) AS tasks FROM client_keys k"
                      " LEFT JOIN tasks t ON t.key_id = k.id GROUP BY k.id ORDER BY k.id")


def committed(conn, key_id, start):
    """USD the key's tasks committed from epoch second ``start`` (a local midnight, so a
    multiple of 15 minutes) on: what their results received since then cost (a result
    without a cost at its share of the estimate), from ``key_costs`` (migration 17), plus
    what its unfinished tasks may still cost (their estimate minus their cost so far) —
    the archive-wide rule of :mod:`archive.budgets`, on this key's tasks alone."""
    spent = conn.execute("SELECT total(cost) FROM key_costs WHERE key_id = ? AND bucket >= ?",
                         (key_id, start)).fetchone()[0]
    # Literal states, as in the partial index tasks_key_in_flight, so SQLite can use it.
    flight = conn.execute(
        "SELECT total(max(estimate - coalesce(cost, 0), 0)) FROM tasks WHERE key_id = ?"
        " AND status NOT IN ('complete', 'error', 'lost') AND estimate IS NOT NULL",
        (key_id,)).fetchone()[0]
    return spent + flight
