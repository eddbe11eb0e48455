"""The archive worker (no Flask): claims pending image downloads through the catalogue.

A result delivered with an ``imageURL`` starts ``pending``. A worker thread **claims** one
in a write transaction (``BEGIN IMMEDIATE``): it sets ``claimed_by`` (host:pid:thread) and
``claimed_until`` (now + lease) on a pending row whose claim is absent or expired and whose
``next_attempt_at`` has come, results with a ``ttl`` (``url_expires_at``) first, then the
oldest. So any number of threads and processes on one catalogue never fetch the same image
at once, and the claims of a worker that died expire and are taken again.

The download itself is :func:`archive.safe_fetch.download`. Then:

* archived: the file is in the store and the row says so (``sha256``, size, dimensions);
* transient failure (connection, timeout, 429, 5xx): ``archive_attempts`` + 1 and back to
  ``pending`` with exponential backoff in ``next_attempt_at``; ``failed`` after the last;
* permanent failure: ``refused`` (by the SSRF rules) or ``failed`` (4xx, too big, not an
  image), with ``archive_error`` saying why.

The lease must outlast a download (the setting's default is twice the fetch deadline).
"""

import logging
import os
import socket
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone

from archive import uploads
from archive.catalogue import mark_archived, utcnow
from archive import records
from archive.safe_fetch import PermanentError, Refused, TransientError, download
from archive.states import ARCHIVED, FAILED, PENDING, REFUSED

log = logging.getLogger(__name__)

CLAIM = f"""
UPDATE results SET claimed_by = ?, claimed_until = ?
WHERE id = (
  SELECT id FROM results
  WHERE archive_state = '{PENDING}' AND image_url IS NOT NULL
    AND (claimed_until IS NULL OR claimed_until < ?)
    AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
  ORDER BY url_expires_at IS NULL, url_expires_at, received_at, id
  LIMIT 1)
RETURNING id, image_uuid, task_uuid, image_url, archive_attempts, url_expires_at
"""
CLAIMED = ("id", "image_uuid", "task_uuid", "image_url", "archive_attempts", "url_expires_at")
RELEASE = "claimed_by = NULL, claimed_until = NULL"
MAX_BACKOFF = 3600.0  # seconds: the longest wait before an image is tried again


def later(seconds):
    """``utcnow()`` plus ``seconds``, in the same sortable text form."""
    moment = datetime.now(timezone.utc) + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def worker_id():
    """This thread's claim signature: ``host:pid:thread``."""
    thread = threading.current_thread()
    return f"{socket.gethostname()}:{os.getpid()}:{thread.name}-{thread.native_id}"


class Fetcher:
    """Downloads pending images into the store.

    :param policy: an :class:`archive.safe_fetch.Policy` (allowlist, caps, deadlines).
    :param lease: seconds a claim lasts.
    :param max_attempts: transient failures before a result is marked ``failed``.
    :param backoff: seconds before the second attempt, doubling after, capped at an hour.
    :param housekeeping: ``(interval seconds, callable)`` pairs run by :meth:`run`.
    """

    def __init__(self, catalogue, store, policy, *, lease=60.0, max_attempts=6,
                 backoff=2.0, concurrency=2, poll_interval=1.0, housekeeping=()):
        self.catalogue, self.store, self.policy = catalogue, store, policy
        self.lease, self.max_attempts, self.backoff = lease, max_attempts, backoff
        self.concurrency, self.poll_interval = max(1, concurrency), poll_interval
        self.housekeeping = [(3600.0, store.sweep_temp), (5.0, self.match_uploads),
                             (5.0, self.take_incoming),
                             (6 * 3600.0, self.sweep_orphans), *housekeeping]

    def claim(self, me):
        """Claim the next image to fetch for ``me``; its row (a dict) or None."""
        now = utcnow()
        with self.catalogue.write() as conn:
            row = conn.execute(CLAIM, (me, later(self.lease), now, now)).fetchone()
        return dict(zip(CLAIMED, row)) if row else None

    def fetch_one(self, me=None):
        """Claim and fetch one image; False when there was nothing to claim."""
        me = me or worker_id()
        job = self.claim(me)
        if job is None:
            return False
        if self._archived_by_upload(job):
            return True
        try:
            stored = download(job["image_url"], self.policy, self.store)
        except Refused as exc:
            self._give_up(job, me, REFUSED, f"refused: {exc}")
        except PermanentError as exc:
            self._give_up(job, me, FAILED, self._with_expiry(job, str(exc)))
        except TransientError as exc:
            self._retry_later(job, me, str(exc))
        except (OSError, sqlite3.Error):
            raise  # the store or the catalogue, not this image: _loop logs it, waits
        except Exception as exc:  # noqa: BLE001 - a bug met on this image's answer
            # Counted as an attempt: left to the lease, the image would be claimed again
            # and again, forever, with no attempt ever recorded.
            log.exception("image %s: unexpected error", job["image_uuid"])
            self._retry_later(job, me, f"unexpected error: {type(exc).__name__}: {exc}")
        else:
            self._archived(job, me, stored)
        return True

    def drain(self):
        """Fetch until nothing is claimable now; returns how many were processed."""
        count, me = 0, worker_id()
        while self.fetch_one(me):
            count += 1
        return count

    def _archived_by_upload(self, job):
        """An upload of this task may already be this image (archive.uploads), or be
        waiting in the store's ``incoming/``, PUT there straight by the provider."""
        conn = self.catalogue.conn
        task_uuid = job["task_uuid"]
        if uploads.sent_to_store(conn, self.store, task_uuid) and uploads.take_incoming(
                self.catalogue, self.store, task_uuid) and self._state(conn, job) == ARCHIVED:
            return True
        if not conn.execute("SELECT 1 FROM uploads WHERE task_uuid = ? AND matched_at IS NULL",
                            (job["task_uuid"],)).fetchone():
            return False
        with self.catalogue.write() as conn:
            uploads.match_uploads(conn, job["task_uuid"])
            return self._state(conn, job) == ARCHIVED

    @staticmethod
    def _state(conn, job):
        return conn.execute("SELECT archive_state FROM results WHERE id = ?",
                            (job["id"],)).fetchone()[0]

    def _archived(self, job, me, stored):
        with self.catalogue.write() as conn:
            if mark_archived(conn, job["image_uuid"], stored, claimed_by=me, attempted=True):
                uploads.match_uploads(conn, job["task_uuid"])
        try:
            self.store.thumbnail(stored.sha256, stored.ext)
        except (OSError, ValueError) as exc:  # the original is safe; remade on demand
            log.warning("thumbnail of %s not made: %s", stored.sha256, exc)

    def _give_up(self, job, me, state, reason):
        log.warning("image %s %s: %s", job["image_uuid"], state, reason)
        with self.catalogue.write() as conn:
            conn.execute(
                f"UPDATE results SET archive_state = ?, archive_error = ?, {RELEASE},"
                " archive_attempts = archive_attempts + 1, next_attempt_at = NULL"
                " WHERE id = ? AND claimed_by = ? AND archive_state = ?",
                (state, reason, job["id"], me, PENDING),
            )

    def _retry_later(self, job, me, reason):
        attempts = job["archive_attempts"] + 1
        if attempts >= self.max_attempts:
            self._give_up(job, me, FAILED, f"gave up after {attempts} attempts: {reason}")
            return
        delay = records.backoff(attempts, self.backoff, MAX_BACKOFF)
        with self.catalogue.write() as conn:
            conn.execute(
                f"UPDATE results SET archive_error = ?, archive_attempts = ?, {RELEASE},"
                " next_attempt_at = ?"
                " WHERE id = ? AND claimed_by = ? AND archive_state = ?",
                (f"attempt {attempts}: {reason}", attempts, later(delay), job["id"], me,
                 PENDING),
            )

    @staticmethod
    def _with_expiry(job, reason):
        expires = job["url_expires_at"]
        if expires and expires < utcnow():
            return f"{reason} (the URL expired at {expires})"
        return reason

    def sweep_orphans(self):
        """Housekeeping: originals nothing references any more (see ImageStore)."""
        return self.store.sweep_orphans(self.catalogue)

    def take_incoming(self):
        """Housekeeping: images the provider PUT straight into the store."""
        return uploads.take_all_incoming(self.catalogue, self.store)

    def match_uploads(self):
        """Housekeeping: match recent uploads whose webhook came after them."""
        return uploads.match_pending(self.catalogue)

    # -- running ----------------------------------------------------------------------

    def run(self, stop):
        """Fetch with ``concurrency`` threads until ``stop`` (an Event) is set; this
        thread runs the housekeeping jobs when they are due."""
        threads = [threading.Thread(target=self._loop, args=(stop,), daemon=True,
                                    name=f"fetcher-{i}") for i in range(self.concurrency)]
        for thread in threads:
            thread.start()
        due = [0.0] * len(self.housekeeping)
        while not stop.is_set():
            for i, (interval, job) in enumerate(self.housekeeping):
                if time.monotonic() >= due[i]:
                    _survive(job)
                    due[i] = time.monotonic() + interval
            stop.wait(min(self.poll_interval, 1.0))
        for thread in threads:
            thread.join()

    def start(self):
        """:meth:`run` in a daemon thread; returns the Event that stops it."""
        stop = threading.Event()
        threading.Thread(target=self.run, args=(stop,), name="fetcher", daemon=True).start()
        return stop

    def _loop(self, stop):
        me = worker_id()
        while not stop.is_set():
            try:
                busy = self.fetch_one(me)
            except sqlite3.OperationalError as exc:  # busy past the timeout: try again later
                log.warning("fetcher: catalogue busy: %s", exc)
                busy = False
            except Exception:  # noqa: BLE001 - a bug must not silently cost a thread;
                log.exception("fetcher: unexpected error")  # the claim expires, retried
                busy = False
            if not busy:
                stop.wait(self.poll_interval)


def _survive(job):
    """Run one housekeeping job. A background loop must outlive a failing pass (the
    provider down during a reconcile), so the error is logged with its traceback, and
    the job runs again at its next interval."""
    try:
        job()
    except Exception:  # noqa: BLE001 - logged in full, never silenced
        log.exception("housekeeping job %s failed", getattr(job, "__name__", job))
