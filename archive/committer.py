"""Group commit: one writer thread per process commits the queued writes together.

Many webhook threads writing one SQLite file each take the write lock and pay one fsync
(``synchronous=FULL``) per delivery, and SQLite's busy handler makes losers sleep whole
milliseconds. Here they hand their work to one thread that runs everything queued in one
``BEGIN IMMEDIATE`` … ``COMMIT``, each job in its own SAVEPOINT so one job's failure
rolls back only that job. A caller returns only after the COMMIT that holds its write,
so "acknowledged" still means "durably stored".

With ``durable=True`` (what the catalogue's ``synchronous=FULL`` asks for) the writer
commits with ``synchronous=NORMAL`` and a second stage makes the commit durable: it
flushes the WAL file to disk (``fdatasync``) and only then releases the callers. This is the guarantee of
``synchronous=FULL`` (the commit's WAL frames are on disk before anyone is told it
happened) with two differences that make it cheaper: the write lock is not held during
the flush, so the other worker process can write meanwhile, and the flush runs outside
the event loop (on a native thread under gevent, through the ``off_loop`` the web layer
hands in), so the process keeps answering
requests while the disk works; one flush covers every commit made while the last one
ran.

Checkpoints (copying the WAL back into the database file) are kept off the write lock
too: SQLite would run one inside the COMMIT that crosses 1,000 WAL pages, doubling that
commit's time while the event loop of its process stands still. The writer raises that
threshold (a safety net under sustained load) and a checkpointer thread runs a passive
checkpoint, which never blocks writers, every ``CHECKPOINT_EVERY`` commits, on a native
thread under gevent.
"""

import os
import queue
import sqlite3
import threading
import time

MAX_BATCH = 64
CHECKPOINT_EVERY = 32  # commits: about 1,000-3,000 WAL pages at 10-20 pages a delivery
WRITER_AUTOCHECKPOINT = 2_000  # pages: the writer checkpoints itself only past this
FIRST_WAIT, LONGEST_WAIT = 0.0002, 0.005  # seconds between tries for another's lock


class _Job:
    __slots__ = ("work", "done", "result", "error")

    def __init__(self, work):
        self.work, self.done = work, threading.Event()
        self.result = self.error = None


def _direct(function, *args):
    """Call ``function`` on this thread: the default way to run a blocking call."""
    return function(*args)


class GroupCommitter:
    """Runs ``work(conn)`` callables in shared write transactions on a writer thread.

    :param connect: makes the writer thread's own connection (autocommit mode).
    :param busy_timeout: seconds to keep trying for a lock another process holds.
    :param wal_path: the database's WAL file: checkpointed in the background every
        ``CHECKPOINT_EVERY`` commits.
    :param durable: flush ``wal_path`` after each commit, before releasing its callers
        (``synchronous=FULL``'s guarantee); False leaves durability to the connection's
        ``synchronous`` pragma.
    :param off_loop: ``off_loop(function, *args)`` runs the blocking flush and checkpoint
        calls; by default on the calling thread. The web layer, which knows whether it
        runs under gevent, hands in one that uses native threads there (storage knows
        nothing of the server's concurrency).

    The writer waits for another process's lock itself, in short sleeps, instead of
    through SQLite's busy handler: that one sleeps in C for whole milliseconds, which
    under gevent stops every request of the worker, while this sleep lets them run and
    queue up, so the next batch is bigger.
    """

    def __init__(self, connect, busy_timeout=3.0, wal_path=None, durable=False,
                 off_loop=_direct):
        self._connect = connect
        self.off_loop = off_loop
        self.busy_timeout = busy_timeout
        self.wal_path = wal_path
        self.sync_path = wal_path if durable else None
        self._queue = self._synced = self._checkpoints = self._checkpoint_done = None
        self._lock = threading.Lock()
        self._pid = None

    def run(self, work):
        """Run ``work(conn)`` inside a write transaction; return its result once committed
        (and, when ``durable``, flushed to disk).

        :raises: whatever ``work`` raised (its writes rolled back), or the
            ``sqlite3.Error``/``OSError`` that kept the batch from committing or from
            reaching the disk.
        """
        self._ensure_threads()
        job = _Job(work)
        self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def _ensure_threads(self):
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():  # first use, or first use after a fork
                self._queue = queue.SimpleQueue()
                self._synced = queue.SimpleQueue() if self.sync_path else None
                self._checkpoints = queue.SimpleQueue() if self.wal_path else None
                self._checkpoint_done = threading.Event()
                self._checkpoint_done.set()  # none running
                threading.Thread(target=self._loop, name="catalogue-writer",
                                 daemon=True).start()
                if self.sync_path:
                    threading.Thread(target=self._sync_loop, name="catalogue-syncer",
                                     daemon=True).start()
                if self.wal_path:
                    threading.Thread(target=self._checkpoint_loop,
                                     name="catalogue-checkpointer", daemon=True).start()
                self._pid = os.getpid()

    def _loop(self):
        conn = self._connect()
        conn.execute("PRAGMA busy_timeout = 0")  # we wait ourselves, see the class doc
        if self.sync_path:
            conn.execute("PRAGMA synchronous = NORMAL")  # the syncer flushes, see above
        if self.wal_path:
            conn.execute(f"PRAGMA wal_autocheckpoint = {WRITER_AUTOCHECKPOINT}")
        jobs_queue, since = self._queue, 0
        while True:
            jobs = [jobs_queue.get()]
            while len(jobs) < MAX_BATCH:
                try:
                    jobs.append(jobs_queue.get_nowait())
                except queue.Empty:
                    break
            committed = self._commit(conn, jobs)
            if committed and self._synced is not None:
                self._synced.put(jobs)
            else:
                _release(jobs)
            if committed and self.wal_path:
                since = self._maybe_checkpoint(conn, since)

    def _maybe_checkpoint(self, conn, since):
        """Every ``CHECKPOINT_EVERY`` commits, ask the checkpointer for a checkpoint; when
        it has finished, catch up here: a passive checkpoint of the few pages committed
        meanwhile, so that the WAL is wholly copied and the next write starts it over
        (a WAL always being written to while checkpointed elsewhere would only grow).
        Returns the commits counted since the last request (-1: catch-up pending)."""
        if since < 0:
            if not self._checkpoint_done.is_set():
                return since
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass  # another process checkpointing: it will do
            return 0
        since += 1
        if since < CHECKPOINT_EVERY:
            return since
        self._checkpoint_done = threading.Event()
        self._checkpoints.put(self._checkpoint_done)
        return -1

    def _checkpoint_loop(self):
        """Passive checkpoints on a connection of their own, off the event loop."""
        conn, off_loop = self._connect(), self.off_loop
        while True:
            done = self._checkpoints.get()
            try:
                off_loop(conn.execute, "PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass  # busy or failing: the next round asks again
            finally:
                done.set()

    def _commit(self, conn, jobs):
        """Run ``jobs`` in one transaction; True when it committed."""
        deadline = time.monotonic() + self.busy_timeout
        try:
            _patiently(conn, "BEGIN IMMEDIATE", deadline)
            if len(jobs) == 1:  # alone, a failing job may take the whole transaction down
                _run_alone(conn, jobs[0])
            for job in jobs if len(jobs) > 1 else ():
                _run_in_savepoint(conn, job)
            if conn.in_transaction:
                _patiently(conn, "COMMIT", deadline)
                return True
            return False
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for job in jobs:
                job.result, job.error = None, job.error or exc
            return False

    def _sync_loop(self):
        """Flush the WAL once for every commit queued so far, then release their callers."""
        synced, off_loop = self._synced, self.off_loop
        while True:
            batches = [synced.get()]
            while True:
                try:
                    batches.append(synced.get_nowait())
                except queue.Empty:
                    break
            try:
                off_loop(_fdatasync, self.sync_path)
            except OSError as exc:  # committed, but not known to be on disk: no 2xx
                for jobs in batches:
                    for job in jobs:
                        job.result, job.error = None, job.error or exc
            for jobs in batches:
                _release(jobs)


def _fdatasync(path):
    """Flush ``path``'s data to disk (the WAL: every frame written so far, whichever
    connection or process wrote it). A WAL that is gone was checkpointed into the
    database file first, so that one is flushed instead."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        fd = os.open(path[:-len("-wal")], os.O_RDONLY)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


def _release(jobs):
    for job in jobs:
        job.done.set()


def _patiently(conn, statement, deadline):
    """Run ``statement``, retrying while another connection holds the lock (a busy
    COMMIT keeps its transaction open, so it may be retried too)."""
    wait = FIRST_WAIT
    while True:
        try:
            return conn.execute(statement)
        except sqlite3.OperationalError as exc:
            busy = "locked" in str(exc) or "busy" in str(exc)
            if not busy or time.monotonic() + wait > deadline:
                raise
        time.sleep(wait)
        wait = min(wait * 2, LONGEST_WAIT)


def _run_alone(conn, job):
    try:
        job.result = job.work(conn)
    except BaseException as exc:  # handed to the caller's thread, which re-raises it
        conn.execute("ROLLBACK")
        job.error = exc


def _run_in_savepoint(conn, job):
    conn.execute("SAVEPOINT job")
    try:
        job.result = job.work(conn)
    except BaseException as exc:  # handed to the caller's thread, which re-raises it
        conn.execute("ROLLBACK TO job")
        job.error = exc
    conn.execute("RELEASE job")
