"""What reconciliation asks of the catalogue (no Flask, no HTTP): which tasks are still
missing results and due to be asked for, which are lost, and what the report lists. The
asking itself (``getResponse``) is the web app's: receiver/provider/reconcile.py."""

from archive import states
from archive.catalogue import rows, utcnow
from archive.fetcher import later

GIVE_UP_AFTER = 7 * 24 * 3600  # seconds; older tasks are reported, no longer asked for
BATCH = 50
LOST_MESSAGE = ("results were still missing when the reconcile window closed, and the "
                "provider had no record of them (taskNotFound) or no answer")
INCOMPLETE = ("results_received + errors_received < number_results"
              f" AND status NOT IN ('{states.COMPLETE}', '{states.LOST}')"
              f" AND NOT (status = '{states.ERROR}' AND acknowledged_at IS NULL)")


def due_tasks(conn, *, after, interval, limit=BATCH):
    """Tasks to ask for now: incomplete, older than ``after`` seconds, younger than the
    window, not asked in the last ``interval`` seconds."""
    return [row["task_uuid"] for row in rows(
        conn, f"SELECT task_uuid FROM tasks WHERE {INCOMPLETE} AND created_at < ?"
              " AND created_at > ? AND (reconciled_at IS NULL OR reconciled_at < ?)"
              " ORDER BY created_at LIMIT ?",
        (later(-after), later(-GIVE_UP_AFTER), later(-interval), limit))]


def mark_asked(catalogue, task_uuids):
    """Note that ``task_uuids`` are being asked for now (when, and how often)."""
    now = utcnow()
    with catalogue.write() as conn:
        conn.executemany("UPDATE tasks SET reconciled_at = ?,"
                         " reconcile_count = reconcile_count + 1 WHERE task_uuid = ?",
                         [(now, uuid) for uuid in task_uuids])


def mark_lost(catalogue):
    """Tasks still missing results once the window has closed become ``lost``; returns
    their taskUUIDs. Nothing more will be asked; a late delivery is still taken."""
    now, cutoff = utcnow(), later(-GIVE_UP_AFTER)
    with catalogue.write() as conn:
        lost = [row[0] for row in conn.execute(
            f"SELECT task_uuid FROM tasks WHERE {INCOMPLETE} AND status != '{states.ERROR}'"
            " AND created_at <= ? LIMIT 1000", (cutoff,))]
        conn.executemany(
            f"UPDATE tasks SET status = '{states.LOST}', error_code = 'lost',"
            " error_message = ?, updated_at = ? WHERE task_uuid = ?",
            [(LOST_MESSAGE, now, uuid) for uuid in lost])
    return lost


def missing_tasks(conn):
    """Incomplete tasks older than a minute, oldest first (at most 100)."""
    return rows(conn, f"SELECT task_uuid, status, number_results, results_received,"
                      f" errors_received, created_at, reconcile_count FROM tasks"
                      f" WHERE {INCOMPLETE} AND created_at < ? ORDER BY created_at LIMIT 100",
                (later(-60),))


def unarchived_images(conn):
    """Images that failed, were refused, or whose URL expired before they were archived,
    each with the reason (at most 100)."""
    return rows(
        conn, "SELECT image_uuid, task_uuid, archive_state, archive_error, archive_attempts,"
              " url_expires_at, CASE"
              " WHEN archive_state IN ('failed', 'refused') THEN archive_error"
              " WHEN image_url IS NULL THEN 'no image URL and no inline data'"
              " ELSE 'the URL expired at ' || url_expires_at || ' before it was archived'"
              " END AS reason FROM results WHERE archive_state IN ('failed', 'refused')"
              " OR (archive_state = 'pending' AND (image_url IS NULL OR url_expires_at < ?))"
              " ORDER BY id LIMIT 100", (utcnow(),))


def retry_failed(catalogue):
    """Put failed and refused downloads back in the queue (after a fix to the allowlist
    or the network); returns how many."""
    with catalogue.write() as conn:
        return conn.execute(
            "UPDATE results SET archive_state = 'pending', archive_attempts = 0,"
            " next_attempt_at = NULL, claimed_by = NULL, claimed_until = NULL"
            " WHERE archive_state IN ('failed', 'refused') AND image_url IS NOT NULL"
        ).rowcount
