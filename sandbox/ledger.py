"""The sandbox's books: what Runware would bill. Every generation the sandbox runs is charged
to its one account, under the API key that sent the task, at the price in force when the
task was accepted (``archive.pricing``), at the moment the image finishes. The balance is
the starting balance (``RUNWARE_SANDBOX_BALANCE``) less every charge whose moment has come,
so, like the rest of the sandbox's plan, it is a function of the clock: no process has to
run for a charge to land. Failed generations are not charged (Runware bills results).

The SQL lives here, on ``sandbox.db`` beside the tasks; the replies are shaped in
:mod:`sandbox.books`.
"""

import hashlib
import hmac
import json
import uuid

from archive.pricing import cost_per_image
from protocol.schemas import DEFAULT_STEPS

SCHEMA = """
CREATE TABLE IF NOT EXISTS charges (
  image_uuid TEXT PRIMARY KEY, task_uuid TEXT NOT NULL, api_key TEXT NOT NULL,
  model TEXT NOT NULL, cost REAL NOT NULL, at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS charges_by_time ON charges (at);
"""
KEY_NAMESPACE = uuid.UUID("6f1c9a52-3e0b-4d7f-9a3c-2b8e5d4f1a60")


def key_uuid(key, secret):
    """The UUID the sandbox's books give an API key: an HMAC of it under the sandbox's own
    key (``secret``), so neither the key nor a plain hash of it (the UI password is one of
    the keys, and a fast unkeyed hash of a password can be guessed from) is ever stored,
    and the same in every process that holds the sandbox key."""
    digest = hmac.new(secret.encode(), key.encode(), hashlib.sha256).hexdigest()
    return str(uuid.uuid5(KEY_NAMESPACE, digest))


def charge(conn, task, items, api_key, accepted_at):
    """Inside the transaction that accepts ``task``: one charge per planned successful
    item, under ``api_key`` (a :func:`key_uuid`), due when the item is ready."""
    cost = cost_per_image(task["width"], task["height"], task.get("steps", DEFAULT_STEPS),
                          at=accepted_at)
    conn.executemany(
        "INSERT INTO charges VALUES (?, ?, ?, ?, ?, ?)",
        [(item.image_uuid, item.task_uuid, api_key, task["model"], cost, item.ready_at)
         for item in items if item.outcome == "success"])


def spent(conn, until, since=None):
    """``(USD, requests)`` charged in ``[since, until]`` (epoch seconds; since None: ever)."""
    row = conn.execute(
        "SELECT total(cost), count(DISTINCT task_uuid) FROM charges WHERE at <= ? AND at >= ?",
        (until, -1 if since is None else since)).fetchone()
    return round(row[0], 10), row[1]


def charges_between(conn, start, stop, *, api_keys=None, models=None):
    """The charges due in ``[start, stop)`` (epoch seconds) as dicts, optionally only those
    of ``api_keys`` and ``models``, oldest first."""
    sql = "SELECT task_uuid, api_key, model, cost, at FROM charges WHERE at >= ? AND at < ?"
    args = [start, stop]
    for column, wanted in (("api_key", api_keys), ("model", models)):
        if wanted is not None:
            sql += f" AND {column} IN (SELECT value FROM json_each(?))"
            args.append(_json_list(wanted))
    names = ("taskUUID", "apiKey", "model", "cost", "at")
    return [dict(zip(names, row)) for row in conn.execute(sql + " ORDER BY at", args)]


def requests_by_key(conn, until):
    """``{api_key: (requests, last charge moment)}`` over every charge due by ``until``."""
    return {row[0]: (row[1], row[2]) for row in conn.execute(
        "SELECT api_key, count(DISTINCT task_uuid), max(at) FROM charges WHERE at <= ?"
        " GROUP BY api_key", (until,))}


def _json_list(values):
    return json.dumps([str(v) for v in values])
