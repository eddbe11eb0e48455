"""The SQLite catalogue: tasks, results, the delivery log, and the one ingest function.

Every path that brings a result in (webhook, sync reply, ``getResponse``, import) goes
through :meth:`Catalogue.ingest` (its transaction's work is :mod:`archive.ingest`), so
dedupe, status and cost rules live in one place; every
way an image's bytes reach the store (download, upload, inline data, import) marks its
result archived through :func:`archived_columns` (:func:`mark_archived`).

Connections are per thread (and per process, so a fork under gunicorn never shares one),
opened in autocommit mode: a transaction is always explicit (:meth:`Catalogue.write`), so
nothing is half-committed and nothing stays open by accident.
"""

import json
import logging
import os
import sqlite3
import threading
import uuid
from datetime import datetime, timedelta, timezone

import sqlite_utils

from archive import delivery_log, migrations
from archive.committer import GroupCommitter
from archive.ingest import IngestResult, next_status, store_delivery
from archive.records import (
    BODY_CAP, INLINE_FIELDS, ForeignResult, UnknownTask, cap_body, elide_inline, rows, utcnow)
from archive.sqlite import immediate, make_private
from archive.states import ARCHIVED

BUSY_TIMEOUT_MS = 5000
MAX_IDLE = 8  # connections kept open between requests (see Catalogue.release)
MEMORY = ":memory:"
# The catalogue package's public names: the catalogue, its ingest's outcome, and the shared
# pieces of archive/records.py that callers take from here.
__all__ = ["Catalogue", "IngestResult", "next_status", "archived_columns", "mark_archived",
           "BODY_CAP", "INLINE_FIELDS", "ForeignResult", "UnknownTask", "cap_body",
           "elide_inline", "rows", "utcnow"]
log = logging.getLogger(__name__)


def archived_columns(stored, *, at=None):
    """The ``results`` columns that say a result is archived as ``stored``, a file in the
    image store (an :class:`archive.images.StoredImage`: sha256, ext, size, width,
    height), archived at ``at`` (now by default). The one definition of "archived": an
    inline image's row is inserted with these (:func:`archive.images.inline_image_columns`),
    every other result is updated to them (:func:`mark_archived`). Nothing is left to
    fetch, so any claim, retry and earlier error go."""
    return {"archive_state": ARCHIVED, "archive_error": None, "sha256": stored.sha256,
            "file_ext": stored.ext, "file_size": stored.size, "img_width": stored.width,
            "img_height": stored.height, "archived_at": at or utcnow(), "claimed_by": None,
            "claimed_until": None, "next_attempt_at": None}


def mark_archived(conn, image_uuid, stored, *, at=None, claimed_by=None, attempted=False):
    """Mark the result ``image_uuid`` archived as ``stored`` (:func:`archived_columns`),
    inside the caller's write transaction; whether it changed.

    A result archived already keeps its file: the first copy archived is the one the
    gallery, the downloads and the exports point at.

    :param at: when it was archived; an import keeps the source's time.
    :param claimed_by: only while this fetcher's claim holds: one whose lease ran out
        must not overwrite the worker that took the image over.
    :param attempted: count one more archive attempt (a download that just succeeded).
    """
    cols = archived_columns(stored, at=at)
    sql = (f"UPDATE results SET {', '.join(f'{c} = ?' for c in cols)},"
           " archive_attempts = archive_attempts + ? WHERE image_uuid = ?"
           " AND archive_state != ?")
    args = [*cols.values(), int(attempted), image_uuid, ARCHIVED]
    if claimed_by is not None:
        sql += " AND claimed_by = ?"
        args.append(claimed_by)
    return conn.execute(sql, args).rowcount == 1


class Catalogue:
    """The catalogue in one SQLite file.

    :param path: the database file; its folder is created if missing. ``":memory:"`` is
        a database in memory for the catalogue's lifetime, shared by all its
        connections (see :meth:`_open_memory`): for tests and one-off scripts.
    :param synchronous: SQLite's ``synchronous`` pragma; ``FULL`` makes every
        acknowledged commit survive power loss, ``NORMAL`` only a process crash.
    :param busy_timeout_ms: how long a write waits for another process's lock before
        it fails (and the webhook answers 503).
    :param off_loop: how the committer runs its blocking flushes (see
        :class:`archive.committer.GroupCommitter`); the web app's knows gevent.
    """

    def __init__(self, path, *, synchronous="FULL", busy_timeout_ms=BUSY_TIMEOUT_MS,
                 off_loop=None):
        self.path = str(path)
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self._local = threading.local()
        self._idle = []  # (Database, pid) released by finished requests
        self._uri = self._keeper = None
        # FULL: the committer flushes the WAL itself, outside the lock and the event loop
        wal_path = self.path + "-wal" if self.path != MEMORY else None
        self._group = GroupCommitter(lambda: self._connect().conn,
                                     busy_timeout=busy_timeout_ms / 1000, wal_path=wal_path,
                                     durable=synchronous.upper() == "FULL",
                                     **({"off_loop": off_loop} if off_loop else {}))
        if self.path == MEMORY:
            self._open_memory()
        else:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            make_private(self.path)

    def _open_memory(self):
        """Every connection to ``":memory:"`` is a new empty database, and this catalogue
        opens several: one per thread, and the committer's writer thread. So each opens
        one named in-memory database in SQLite's shared cache instead, and one connection
        is kept open: the database lives as long as one does. In a shared cache a read
        that meets another connection's uncommitted write fails at once ("database table
        is locked") where a file waits (the write lock is still taken patiently): fine
        for a test, not for a server."""
        self._uri = f"file:runware-archive-{uuid.uuid4().hex}?mode=memory&cache=shared"
        self._keeper = self._connect()

    # -- connections -------------------------------------------------------------

    def _connect(self):
        conn = sqlite3.connect(
            self._uri or self.path, isolation_level=None,
            timeout=self.busy_timeout_ms / 1000, check_same_thread=False,
            uri=self._uri is not None,
        )
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        return sqlite_utils.Database(conn, execute_plugins=False, recursive_triggers=False)

    @property
    def db(self):
        """This thread's :class:`sqlite_utils.Database`: one released by an earlier
        request if there is one, else a new connection."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.db, local.pid = self._reuse() or self._connect(), os.getpid()
        return local.db

    def _reuse(self):
        pid = os.getpid()
        while self._idle:
            try:
                db, owner = self._idle.pop()
            except IndexError:  # another thread took the last one
                return None
            if owner == pid:  # never one opened before a fork
                return db
        return None

    def release(self):
        """Give this thread's connection back, open, for the next request to use.

        Each request runs on a thread (or, under gevent, a greenlet) of its own, and a
        new connection costs ~1 ms before its first row (SQLite reads the schema: some
        forty tables, indexes and triggers). The app calls this at the end of every
        request; up to ``MAX_IDLE`` connections wait here, the rest are closed.
        """
        local = self._local
        db = getattr(local, "db", None)
        if db is not None and local.pid == os.getpid():
            if db.conn.in_transaction:  # a request that failed half-way: not reusable
                db.conn.rollback()
            if len(self._idle) < MAX_IDLE:
                self._idle.append((db, local.pid))
            else:
                db.close()
        local.__dict__.clear()

    @property
    def conn(self):
        """This thread's raw :class:`sqlite3.Connection`, for the hot paths."""
        return self.db.conn

    def close(self):
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None and self._local.pid == os.getpid():
            db.close()
        self._local.__dict__.clear()

    def write(self):
        """One write transaction on this thread's connection (:func:`immediate`)."""
        return immediate(self.conn)

    def migrate(self):
        """Create or upgrade the schema and switch to WAL (a file only: memory has no
        WAL); returns the schema version."""
        db = self.db
        if self._uri is None and db.conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.conn.execute("PRAGMA journal_mode = WAL")  # once: it is kept in the file
        return migrations.apply(db, self.write)

    # -- tasks ---------------------------------------------------------------------

    def create_task(self, row, *, conn=None):
        """Insert a task row (columns of ``tasks``); ``params`` may be a dict."""
        row = dict(row)
        row.setdefault("created_at", utcnow())
        row.setdefault("updated_at", row["created_at"])
        row.setdefault("status", "sending")
        if isinstance(row.get("params"), (dict, list)):
            row["params"] = json.dumps(row["params"], sort_keys=True)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        if conn is not None:
            conn.execute(f"INSERT INTO tasks ({cols}) VALUES ({marks})", list(row.values()))
            return row
        with self.write() as conn:
            conn.execute(f"INSERT INTO tasks ({cols}) VALUES ({marks})", list(row.values()))
        return row

    def mark_acknowledged(self, task_uuid, *, ack):
        """Record the provider's acknowledgement; ``sending`` becomes ``submitted``."""
        text, _ = cap_body(json.dumps(ack))
        now = utcnow()
        with self.write() as conn:
            conn.execute(
                "UPDATE tasks SET ack = ?, acknowledged_at = ?, updated_at = ?,"
                " status = CASE WHEN status = 'sending' THEN 'submitted' ELSE status END"
                " WHERE task_uuid = ?",
                (text, now, now, task_uuid),
            )

    def mark_failed(self, task_uuid, *, code, message, ack=None):
        """Record a refused or failed submission (or a task-level provider error)."""
        text = cap_body(json.dumps(ack))[0] if ack is not None else None
        now = utcnow()
        with self.write() as conn:
            conn.execute(
                "UPDATE tasks SET status = CASE WHEN status = 'complete' THEN status"
                " ELSE 'error' END, error_code = ?, error_message = ?,"
                " ack = coalesce(?, ack), updated_at = ? WHERE task_uuid = ?",
                (code, message, text, now, task_uuid),
            )

    def get_task(self, task_uuid):
        """The task row as a dict with its ``results`` and ``failures`` (the errors
        received, one per failed image where the error named it), or None."""
        conn = self.conn
        found = rows(conn, "SELECT * FROM tasks WHERE task_uuid = ?", (task_uuid,))
        if not found:
            return None
        task = found[0]
        task["results"] = rows(conn, "SELECT * FROM results WHERE task_uuid = ? ORDER BY id",
                               (task_uuid,))
        task["failures"] = rows(conn, "SELECT image_uuid, code, message, received_at"
                                      " FROM task_errors WHERE task_uuid = ?"
                                      " ORDER BY received_at, rowid", (task_uuid,))
        return task

    def has_task(self, task_uuid):
        """Whether the catalogue holds task ``task_uuid``."""
        return self.conn.execute("SELECT 1 FROM tasks WHERE task_uuid = ?",
                                 (task_uuid,)).fetchone() is not None

    def list_tasks(self, *, limit=50, before_id=None):
        """Tasks newest first, at most ``limit``, keyset-paged by ``id`` (no OFFSET)."""
        sql = "SELECT * FROM tasks"
        args = []
        if before_id is not None:
            sql += " WHERE id < ?"
            args.append(before_id)
        sql += " ORDER BY id DESC LIMIT ?"
        args.append(limit)
        return rows(self.conn, sql, args)

    # -- the one way results come in --------------------------------------------------

    def ingest(self, task_uuid, *, results=(), errors=(), source="webhook",
               raw_body=None, remote_addr=None, columns_for=None, progress=0, note=None,
               content_type=None, received_size=None, conn=None):
        """Store one delivery for ``task_uuid`` in one transaction and log it.

        The transaction is shared with other deliveries arriving at the same moment
        (group commit, see :mod:`archive.committer`); this returns after it committed.

        :param results: loaded result items (Runware field names).
        :param errors: loaded error items.
        :param columns_for: optional ``columns_for(item) -> dict`` of extra result columns,
            called before the transaction (the image store decodes inline data here).
        :param progress: how many progress-only items the delivery carried (not stored).
        :param note: said in the delivery log's reason (items that could not be read).
        :param content_type: the Content-Type the delivery came with, for the log.
        :param received_size: the bytes that arrived, when ``raw_body`` is not them (inline
            image data elided): the log's ``body_size`` says what arrived, not what it kept.
        :param conn: a write transaction of the caller's to run in, instead of a group
            commit (an import restores a whole export in one, or nothing of it).
        :raises UnknownTask: no such task; nothing is written.
        :raises ForeignResult: an item names another task; nothing is written.
        :returns: :class:`IngestResult`.
        """
        for item in (*results, *errors):
            claimed = item.get("taskUUID")
            if claimed is not None and claimed != task_uuid:
                raise ForeignResult(f"item belongs to task {claimed}, not {task_uuid}")
        extra = [columns_for(item) if columns_for else {} for item in results]
        body, size = cap_body(raw_body)
        if received_size is not None:
            size = received_size
        log = {"source": source, "body": body, "body_size": size, "remote_addr": remote_addr,
               "reason": note, "content_type": content_type}

        def work(conn):
            return store_delivery(conn, task_uuid, results, errors, extra, log, progress)

        return work(conn) if conn is not None else self._group.run(work)

    def log_rejection(self, *, source, reason, status_code, task_uuid=None,
                      raw_body=None, remote_addr=None, content_type=None):
        """Count a refused delivery and log it while its hour's sample has room
        (:mod:`archive.delivery_log`; group-committed like ingests); returns the logged
        row's id, or None when it was only counted."""
        body, size = cap_body(raw_body)

        def work(conn):
            now = utcnow()
            counts = delivery_log.count_refusal(conn, now[:13], reason, remote_addr)
            if not delivery_log.keep_sample(*counts):
                delivery_log.count_unsampled(conn)
                return None
            return conn.execute(
                "INSERT INTO deliveries (received_at, source, task_uuid, verdict, reason,"
                " status_code, body, body_size, remote_addr, content_type)"
                " VALUES (?, ?, ?, 'rejected', ?, ?, ?, ?, ?, ?)",
                (now, source, task_uuid, reason, status_code, body, size, remote_addr,
                 content_type),
            ).lastrowid

        return self._group.run(work)

    def prune_deliveries(self, *, older_than_days):
        """Apply the delivery log's retention, in short batches; returns how many went."""
        cutoff = (datetime.now(timezone.utc) - timedelta(days=older_than_days)).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ")
        before_id = delivery_log.first_id_from(self.conn, cutoff)
        gone = 0
        while before_id is not None:
            with self.write() as conn:
                batch = delivery_log.prune_batch(conn, before_id, cutoff[:13])
            gone += batch
            if batch < delivery_log.PRUNE_BATCH:
                return gone
        return gone

    def deliveries(self, *, task_uuid=None, verdict=None, limit=100):
        """The delivery log with bodies, newest first, optionally for one task or verdict
        (:func:`archive.delivery_log.deliveries`)."""
        return delivery_log.deliveries(self.conn, task_uuid=task_uuid, verdict=verdict,
                                       limit=limit, with_body=True)[0]
