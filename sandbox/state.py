"""The sandbox's memory: ``sandbox.db`` and its images folder, shared by every worker process.

Kept apart from the catalogue on purpose: the sandbox plays Runware, and Runware's state is
not ours. A task is planned once, when first seen (seeds, imageUUIDs, the moment each result
"finishes", which ones fail), so a repeated taskUUID, a ``getResponse`` answered by another
gunicorn worker and an image request all read the same plan. Whether an item is still
processing is a function of the clock, so no process has to be running for it to "finish".
Images are rendered on first use and written atomically; rendering is deterministic, so two
processes racing to render one write the same bytes.
"""

import contextlib
import hashlib
import json
import os
import random
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass

from archive.sqlite import immediate, make_private
from sandbox import ledger
from sandbox import render as sandbox_render
from protocol.schemas import RANDOM_SEED_MAX, SEED_MAX

DEFAULT_TTL = 24 * 3600  # hosted URLs live a day unless the task says otherwise
SWEEP_EVERY = 60.0  # seconds between deletions of expired image files
PENDING_FOR_AT_MOST = 3600.0  # seconds a finished image's delivery counts as work to do
SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
  task_uuid TEXT PRIMARY KEY, request_hash TEXT NOT NULL, task TEXT NOT NULL,
  faults TEXT NOT NULL, images_url TEXT NOT NULL, mode TEXT NOT NULL, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
  image_uuid TEXT PRIMARY KEY, task_uuid TEXT NOT NULL REFERENCES tasks (task_uuid),
  position INTEGER NOT NULL, seed INTEGER NOT NULL, ready_at REAL NOT NULL,
  expires_at REAL NOT NULL, outcome TEXT NOT NULL, webhook TEXT, upload TEXT,
  swept INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS items_by_task ON items (task_uuid, ready_at, position);
CREATE INDEX IF NOT EXISTS items_by_expiry ON items (swept, expires_at);
CREATE TABLE IF NOT EXISTS attempts (
  id INTEGER PRIMARY KEY, image_uuid TEXT NOT NULL, kind TEXT NOT NULL,
  attempt INTEGER NOT NULL, status_code INTEGER, error TEXT, at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_by_image ON attempts (image_uuid);
CREATE TABLE IF NOT EXISTS submit_faults (body_hash TEXT PRIMARY KEY, count INTEGER NOT NULL);
"""


class TaskConflict(ValueError):
    """A taskUUID seen before."""


@dataclass
class Item:
    """One planned generation of a task."""

    image_uuid: str
    task_uuid: str
    position: int
    seed: int
    ready_at: float
    expires_at: float
    outcome: str  # "success" or "error"
    webhook: str | None
    upload: str | None


@dataclass
class Task:
    """A task as the sandbox accepted it."""

    task_uuid: str
    task: dict
    faults: str
    images_url: str
    mode: str  # the deliveryMethod: "sync" or "async"
    created_at: float


def request_hash(task):
    """The SHA-256 of a task's canonical JSON, kept with the task for inspection."""
    return hashlib.sha256(json.dumps(task, sort_keys=True).encode()).hexdigest()


def plan_seeds(task, count):
    """Seeds for ``count`` results: seed, seed+1, … when given, else distinct random ones
    from the unsigned 32-bit range (runware-api.md §2)."""
    if "seed" in task:
        return [(task["seed"] + i) % (SEED_MAX + 1) for i in range(count)]
    return random.SystemRandom().sample(range(RANDOM_SEED_MAX + 1), count)


class SandboxState:
    """``sandbox.db`` plus ``sandbox-images/`` in ``folder``; ``clock`` is settable for tests.

    :param folder: where both live (the data folder, or the standalone sandbox's own).
    """

    def __init__(self, folder, clock=time.time):
        self.folder = os.path.abspath(folder)
        self.images = os.path.join(self.folder, "sandbox-images")
        self.path = os.path.join(self.folder, "sandbox.db")
        self.clock = clock
        self._local = threading.local()
        self._last_sweep = 0.0
        os.makedirs(self.images, exist_ok=True)
        make_private(self.path)  # before SQLite opens it: 0600, as the catalogue
        self.conn.executescript(SCHEMA + ledger.SCHEMA)

    @property
    def conn(self):
        """This thread's connection (autocommit; per process, so a fork never shares one)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            local.conn, local.pid = conn, os.getpid()
        return local.conn

    def write(self):
        """One ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on error."""
        return immediate(self.conn)

    # -- tasks -------------------------------------------------------------------------

    def accept(self, task, *, faults, faults_text, images_url, mode, result_delay,
               api_key=None):
        """Record and plan ``task`` and charge its generations to ``api_key`` (a
        :func:`sandbox.ledger.key_uuid`, when given); returns its :class:`Task`.

        :raises TaskConflict: the taskUUID was used before, whatever its parameters were:
            Runware answers ``conflictTaskUUID`` and does not replay its first answer.
        """
        digest, now = request_hash(task), self.clock()
        with self.write() as conn:
            if conn.execute("SELECT 1 FROM tasks WHERE task_uuid = ?",
                            (task["taskUUID"],)).fetchone() is not None:
                raise TaskConflict(task["taskUUID"])
            conn.execute(
                "INSERT INTO tasks VALUES (?, ?, ?, ?, ?, ?, ?)",
                (task["taskUUID"], digest, json.dumps(task), faults_text, images_url, mode, now),
            )
            planned = list(self._plan(task, faults, mode, result_delay, now))
            for item in planned:
                conn.execute("INSERT INTO items VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)", (
                    item.image_uuid, item.task_uuid, item.position, item.seed, item.ready_at,
                    item.expires_at, item.outcome, item.webhook, item.upload))
            if api_key is not None:
                ledger.charge(conn, task, planned, api_key, now)
        return Task(task["taskUUID"], task, faults_text, images_url, mode, now)

    def _plan(self, task, faults, mode, result_delay, now):
        """Seeds, imageUUIDs, finishing times (shuffled, delayed) and outcomes of a task."""
        count = task.get("numberResults", 1)
        rng = faults.rng("plan", task["taskUUID"])
        order = list(range(count))
        if rng.random() < faults.shuffle:
            rng.shuffle(order)
        step = 0.0 if mode == "sync" else result_delay
        ttl = task.get("ttl", DEFAULT_TTL)
        seeds = plan_seeds(task, count)
        for rank, position in enumerate(order):
            ready = now + step * (rank + 1) + (rng.uniform(0, faults.delay) if step else 0)
            failed = rng.random() < faults.fail
            yield Item(
                str(uuid.uuid4()), task["taskUUID"], position, seeds[position], ready, ready + ttl,
                "error" if failed else "success",
                "pending" if "webhookURL" in task else None,
                "pending" if "uploadEndpoint" in task and not failed else None,
            )

    def pending_pixels(self):
        """Pixels of the images not yet finished or not yet delivered, over every task:
        the work the sandbox has still to do. A delivery still pending an hour after its
        image finished was lost with the process that held it, and no longer counts."""
        now = self.clock()
        return self.conn.execute(
            "SELECT total(json_extract(t.task, '$.width') * json_extract(t.task, '$.height'))"
            " FROM items i JOIN tasks t USING (task_uuid)"
            " WHERE i.ready_at > ? OR ((i.webhook = 'pending' OR i.upload = 'pending')"
            " AND i.ready_at > ?)", (now, now - PENDING_FOR_AT_MOST)).fetchone()[0]

    def task(self, task_uuid):
        """The :class:`Task`, or None."""
        row = self.conn.execute("SELECT * FROM tasks WHERE task_uuid = ?",
                                (task_uuid,)).fetchone()
        return _task(row) if row else None

    def items(self, task_uuid):
        """A task's items in the order they finish."""
        rows = self.conn.execute(
            "SELECT * FROM items WHERE task_uuid = ? ORDER BY ready_at, position", (task_uuid,)
        ).fetchall()
        return [_item(row) for row in rows]

    def item(self, image_uuid):
        """One :class:`Item` by imageUUID, or None."""
        row = self.conn.execute("SELECT * FROM items WHERE image_uuid = ?",
                                (image_uuid,)).fetchone()
        return _item(row) if row else None

    # -- images ------------------------------------------------------------------------

    def image_bytes(self, task, item):
        """The item's encoded image: from disk, else rendered now and written atomically."""
        path = os.path.join(self.images, f"{item.image_uuid}.{extension(task)}")
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            pass
        data = sandbox_render.render_bytes(task.task, item.seed)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return data

    def sweep(self):
        """Delete the files of expired images (at most once a minute per process)."""
        now = self.clock()
        if now - self._last_sweep < SWEEP_EVERY:
            return
        self._last_sweep = now
        rows = self.conn.execute(
            "SELECT i.image_uuid, t.task FROM items i JOIN tasks t USING (task_uuid)"
            " WHERE i.swept = 0 AND i.expires_at <= ?", (now,)).fetchall()
        for row in rows:
            ext = sandbox_render.extension(json.loads(row["task"]).get("outputFormat"))
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.images, f"{row['image_uuid']}.{ext}"))
        with self.write() as conn:
            conn.executemany("UPDATE items SET swept = 1 WHERE image_uuid = ?",
                             [(row["image_uuid"],) for row in rows])

    # -- deliveries --------------------------------------------------------------------

    def mark(self, image_uuid, kind, state):
        """Set an item's ``webhook`` or ``upload`` state (pending, delivered, failed)."""
        column = {"webhook": "webhook", "upload": "upload"}[kind]
        with self.write() as conn:
            conn.execute(f"UPDATE items SET {column} = ? WHERE image_uuid = ?",
                         (state, image_uuid))

    def log_attempt(self, image_uuid, kind, attempt, *, status_code=None, error=None):
        """Record one delivery attempt (kind: webhook, duplicate or upload)."""
        with self.write() as conn:
            conn.execute(
                "INSERT INTO attempts (image_uuid, kind, attempt, status_code, error, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (image_uuid, kind, attempt, status_code, error, self.clock()))

    def attempts(self, image_uuid=None):
        """The attempt log as dicts, oldest first, optionally for one image."""
        sql, args = "SELECT * FROM attempts", ()
        if image_uuid:
            sql, args = sql + " WHERE image_uuid = ?", (image_uuid,)
        return [dict(row) for row in self.conn.execute(sql + " ORDER BY id", args)]

    def charge_submit_fault(self, body_hash, limit, decide):
        """Call ``decide(count)`` for a request body that got ``count`` fault answers so
        far; count it if it answers a status. None once ``limit`` is reached."""
        with self.write() as conn:
            row = conn.execute("SELECT count FROM submit_faults WHERE body_hash = ?",
                               (body_hash,)).fetchone()
            count = row["count"] if row else 0
            status = decide(count) if count < limit else None
            if status is not None:
                conn.execute(
                    "INSERT INTO submit_faults VALUES (?, 1) ON CONFLICT (body_hash)"
                    " DO UPDATE SET count = count + 1", (body_hash,))
        return status


def extension(task):
    """The file extension of a :class:`Task`'s images."""
    return sandbox_render.extension(task.task.get("outputFormat"))


def _task(row):
    return Task(row["task_uuid"], json.loads(row["task"]), row["faults"], row["images_url"],
                row["mode"], row["created_at"])


def _item(row):
    return Item(row["image_uuid"], row["task_uuid"], row["position"], row["seed"],
                row["ready_at"], row["expires_at"], row["outcome"], row["webhook"],
                row["upload"])
