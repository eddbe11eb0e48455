"""Login sessions and the failed-login count, kept in the catalogue (schema: migration 14).

Neither may live in a process: gunicorn runs several, a request may land on any of them,
and a restart must not forget a logout or a lockout.

**Sessions.** The browser's signed cookie holds only a random session id; the row is
keyed by the id's SHA-256, so the catalogue (or a copy of it) holds nothing that logs
anyone in. Each row also holds the *password epoch* its login was made under (a value
the caller derives from the password; nothing here knows it), and a session whose epoch
is not the current one is refused: a new password logs out everyone. Ending a session
deletes its row, so a copy of its cookie is worthless from then on. A request costs one
primary-key lookup; ``last_seen`` is rewritten at most every ``touch_every`` seconds.

**Failed logins.** One row per wrong password: the client address and the time. An
address with ``limit`` of them within ``window`` seconds is refused until the ``limit``-th
newest leaves the window. Judging an attempt and counting it happen in one write
transaction (``BEGIN IMMEDIATE`` serialises every process), so guesses sent in parallel
cannot all pass the check before any of them is counted.
"""

import hashlib
import hmac
import secrets
import sqlite3
import time

SESSION_ID_BYTES = 32
FAILURES_KEPT = 100_000  # rows at most, whatever the window holds (a spray of addresses)


def _key(session_id):
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions:
    """The ``sessions`` table of ``catalogue``.

    :param lifetime: seconds a session lives from its login.
    :param clock: wall-clock seconds (shared by every process, unlike a monotonic one).
    """

    def __init__(self, catalogue, *, lifetime, clock=time.time, touch_every=300.0):
        self.catalogue, self.lifetime, self.clock = catalogue, lifetime, clock
        self.touch_every = touch_every

    def start(self, epoch):
        """A new session under ``epoch``; returns its id (for the cookie, never stored).
        Expired sessions and those of another epoch are deleted on the way."""
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        now = self.clock()
        with self.catalogue.write() as conn:
            conn.execute("DELETE FROM sessions WHERE expires_at <= ? OR epoch != ?", (now, epoch))
            conn.execute(
                "INSERT INTO sessions (id, epoch, created_at, last_seen, expires_at)"
                " VALUES (?, ?, ?, ?, ?)", (_key(session_id), epoch, now, now, now + self.lifetime))
        return session_id

    def check(self, session_id, epoch):
        """True when ``session_id`` is a live session of ``epoch``. A dead one's row is
        deleted when seen; a busy catalogue never fails the check for that."""
        if not isinstance(session_id, str) or not session_id:
            return False
        key, now = _key(session_id), self.clock()
        row = self.catalogue.conn.execute(
            "SELECT epoch, last_seen, expires_at FROM sessions WHERE id = ?", (key,)).fetchone()
        if row is None:
            return False
        alive = row[2] > now and hmac.compare_digest(row[0].encode(), epoch.encode())
        if not alive:
            self._best_effort("DELETE FROM sessions WHERE id = ?", (key,))
        elif now - row[1] >= self.touch_every:
            self._best_effort("UPDATE sessions SET last_seen = ? WHERE id = ?", (now, key))
        return alive

    def end(self, session_id):
        """Delete ``session_id``'s row: every copy of its cookie is refused from now on."""
        if isinstance(session_id, str) and session_id:
            with self.catalogue.write() as conn:
                conn.execute("DELETE FROM sessions WHERE id = ?", (_key(session_id),))

    def keep_only(self, epoch):
        """Delete every session of another epoch (the password changed)."""
        self._best_effort("DELETE FROM sessions WHERE epoch != ?", (epoch,))

    def count(self):
        """Sessions in the table, live or not yet pruned."""
        return self.catalogue.conn.execute("SELECT count(*) FROM sessions").fetchone()[0]

    def _best_effort(self, sql, args):
        # Housekeeping: the answer does not depend on it, so a catalogue locked by another
        # writer past the busy timeout must not turn a page view into an error.
        try:
            with self.catalogue.write() as conn:
                conn.execute(sql, args)
        except sqlite3.OperationalError:
            pass


class LoginLimit:
    """The ``login_failures`` table of ``catalogue``: at most ``limit`` wrong passwords
    per client address within ``window`` seconds."""

    def __init__(self, catalogue, *, limit=5, window=900.0, clock=time.time,
                 kept=FAILURES_KEPT):
        self.catalogue, self.limit, self.window, self.clock = catalogue, limit, window, clock
        self.kept = kept

    def attempt(self, address, right, *, forget=False):
        """Judge one password attempt from ``address`` whose password was ``right``.

        :param forget: on a right password, forget the address's failures (a login).
        :returns: 0 when the attempt counts as made (a wrong one was counted); else the
            seconds before ``address`` may try again, and nothing was counted.
        :raises sqlite3.OperationalError: the catalogue stayed locked past its busy
            timeout (the caller answers 503: a right password must not pass unjudged).
        """
        address, now = address or "-", self.clock()
        with self.catalogue.write() as conn:
            wait = self._wait(conn, address, now)
            if wait:
                return wait
            if not right:
                conn.execute("INSERT INTO login_failures (address, failed_at) VALUES (?, ?)",
                             (address, now))
                conn.execute("DELETE FROM login_failures WHERE failed_at <= ?",
                             (now - self.window,))
                conn.execute("DELETE FROM login_failures WHERE id <= "
                             "(SELECT max(id) FROM login_failures) - ?", (self.kept,))
            elif forget:
                conn.execute("DELETE FROM login_failures WHERE address = ?", (address,))
        return 0.0

    def wait(self, address):
        """Seconds before ``address`` may try again; 0 when it may now."""
        return self._wait(self.catalogue.conn, address or "-", self.clock())

    def _wait(self, conn, address, now):
        recent = conn.execute(
            "SELECT failed_at FROM login_failures WHERE address = ? AND failed_at > ?"
            " ORDER BY failed_at DESC LIMIT ?", (address, now - self.window, self.limit),
        ).fetchall()
        if len(recent) < self.limit:
            return 0.0
        return recent[-1][0] + self.window - now
