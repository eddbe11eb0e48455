"""Group commit: one writer thread per process commits the queued writes together.

Many webhook threads writing one SQLite file each take the write lock and pay one fsync
(``synchronous=FULL``) per delivery, and SQLite's busy handler makes losers sleep whole
milliseconds. Here they hand their work to one thread that runs everything queued in one
``BEGIN IMMEDIATE`` … ``COMMIT``, each job in its own SAVEPOINT so one job's failure
rolls back only that job. A caller returns only after the COMMIT that holds its write,
so "acknowledged" still means "durably stored".
"""

import os
import queue
import sqlite3
import threading
import time

MAX_BATCH = 64
FIRST_WAIT, LONGEST_WAIT = 0.0002, 0.005  # seconds between tries for another's lock


class _Job:
    __slots__ = ("work", "done", "result", "error")

    def __init__(self, work):
        self.work, self.done = work, threading.Event()
        self.result = self.error = None


class GroupCommitter:
    """Runs ``work(conn)`` callables in shared write transactions on a writer thread.

    :param connect: makes the writer thread's own connection (autocommit mode).
    :param busy_timeout: seconds to keep trying for a lock another process holds.

    The writer waits for another process's lock itself, in short sleeps, instead of
    through SQLite's busy handler: that one sleeps in C for whole milliseconds, which
    under gevent stops every request of the worker, while this sleep lets them run and
    queue up, so the next batch is bigger.
    """

    def __init__(self, connect, busy_timeout=3.0):
        self._connect = connect
        self.busy_timeout = busy_timeout
        self._queue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pid = None

    def run(self, work):
        """Run ``work(conn)`` inside a write transaction; return its result once committed.

        :raises: whatever ``work`` raised (its writes rolled back), or the
            ``sqlite3.Error`` that kept the batch from committing (nothing written).
        """
        self._ensure_thread()
        job = _Job(work)
        self._queue.put(job)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def _ensure_thread(self):
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():  # first use, or first use after a fork
                self._queue = queue.SimpleQueue()
                threading.Thread(target=self._loop, name="catalogue-writer",
                                 daemon=True).start()
                self._pid = os.getpid()

    def _loop(self):
        conn = self._connect()
        conn.execute("PRAGMA busy_timeout = 0")  # we wait ourselves, see the class doc
        jobs_queue = self._queue
        while True:
            jobs = [jobs_queue.get()]
            while len(jobs) < MAX_BATCH:
                try:
                    jobs.append(jobs_queue.get_nowait())
                except queue.Empty:
                    break
            self._commit(conn, jobs)

    def _commit(self, conn, jobs):
        deadline = time.monotonic() + self.busy_timeout
        try:
            _patiently(conn, "BEGIN IMMEDIATE", deadline)
            if len(jobs) == 1:  # alone, a failing job may take the whole transaction down
                _run_alone(conn, jobs[0])
            for job in jobs if len(jobs) > 1 else ():
                _run_in_savepoint(conn, job)
            if conn.in_transaction:
                _patiently(conn, "COMMIT", deadline)
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for job in jobs:
                job.result, job.error = None, job.error or exc
        finally:
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
