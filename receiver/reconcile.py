"""Reconciliation: ask the provider for what a task is still missing, and report what the
archive could not keep, so nothing delivered is left unrecorded without a visible reason.

A task with fewer results (and errors) than ``numberResults`` once
``RUNWARE_ARCHIVE_RECONCILE_AFTER`` seconds have passed since it was created is asked for
with ``getResponse`` (runware-api.md §5), at most once per
``RUNWARE_ARCHIVE_RECONCILE_INTERVAL`` and for up to a week; what comes back goes through
the one ingest function (source ``getResponse``). ``taskNotFound`` and its kin are no
information (:mod:`receiver.replies`): the task keeps its state and is asked again. A task
still missing results when the week is over is marked ``lost``: it is finished, its estimate
leaves the in-flight sum, and the report names it. The report also lists the tasks still
missing results, the images that failed, were refused or whose URL expired before they were
archived, and the uploads that matched no result.
"""

import json
import logging
from dataclasses import dataclass, field

import requests

from archive import uploads
from archive.catalogue import utcnow
from archive.fetcher import later
from receiver.archiving import inline_prepare
from receiver.provider_client import provider_client
from receiver.replies import ingest_reply

log = logging.getLogger(__name__)
GIVE_UP_AFTER = 7 * 24 * 3600  # seconds; older tasks are reported, no longer asked for
BATCH = 50


@dataclass
class Report:
    """What one reconcile pass asked, got and found wrong."""

    asked: list = field(default_factory=list)
    new_results: int = 0
    new_errors: int = 0
    processing: int = 0
    not_found: list = field(default_factory=list)
    lost: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    images: list = field(default_factory=list)
    unmatched_uploads: list = field(default_factory=list)
    retried: int = 0


def _rows(conn, sql, args=()):
    cur = conn.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


INCOMPLETE = ("results_received + errors_received < number_results"
              " AND status NOT IN ('complete', 'lost')"
              " AND NOT (status = 'error' AND acknowledged_at IS NULL)")


def due_tasks(conn, *, after, interval, limit=BATCH):
    """Tasks to ask for now: incomplete, older than ``after`` seconds, younger than a week,
    not asked in the last ``interval`` seconds."""
    return [row["task_uuid"] for row in _rows(
        conn, f"SELECT task_uuid FROM tasks WHERE {INCOMPLETE} AND created_at < ?"
              " AND created_at > ? AND (reconciled_at IS NULL OR reconciled_at < ?)"
              " ORDER BY created_at LIMIT ?",
        (later(-after), later(-GIVE_UP_AFTER), later(-interval), limit))]


def ask_provider(catalogue, client, task_uuids, prepare, report):
    """One ``getResponse`` POST for ``task_uuids``; ingest what it brings."""
    now = utcnow()
    with catalogue.write() as conn:
        conn.executemany("UPDATE tasks SET reconciled_at = ?,"
                         " reconcile_count = reconcile_count + 1 WHERE task_uuid = ?",
                         [(now, uuid) for uuid in task_uuids])
    report.asked.extend(task_uuids)
    try:
        status, body = client.post([{"taskType": "getResponse", "taskUUID": uuid}
                                    for uuid in task_uuids])
    except requests.RequestException as exc:
        report.problems.append(f"getResponse: provider unreachable ({type(exc).__name__})")
        return
    for uuid in task_uuids:
        outcome = ingest_reply(catalogue, uuid, body, source="getResponse", prepare=prepare)
        report.new_results += outcome.new_results
        report.new_errors += outcome.new_errors
        report.processing += outcome.processing
        if outcome.not_found:
            report.not_found.append(uuid)
        if outcome.problem:
            report.problems.append(f"{uuid}: {outcome.problem}")
    stray = [e for e in body.get("errors") or [] if isinstance(e, dict) and not e.get("taskUUID")]
    if stray or (status >= 400 and not body.get("data")):
        report.problems.append(f"getResponse: HTTP {status} {json.dumps(stray)[:300]}")


def mark_lost(catalogue):
    """Tasks still missing results once the reconcile window has closed: ``lost``; returns
    their taskUUIDs. Nothing more will be asked; a late delivery is still taken."""
    now, cutoff = utcnow(), later(-GIVE_UP_AFTER)
    with catalogue.write() as conn:
        lost = [row[0] for row in conn.execute(
            f"SELECT task_uuid FROM tasks WHERE {INCOMPLETE} AND status != 'error'"
            " AND created_at <= ? LIMIT 1000", (cutoff,))]
        conn.executemany(
            "UPDATE tasks SET status = 'lost', error_code = 'lost', error_message = ?,"
            " updated_at = ? WHERE task_uuid = ?",
            [(LOST_MESSAGE, now, uuid) for uuid in lost])
    return lost


LOST_MESSAGE = ("results were still missing when the reconcile window closed, and the "
                "provider had no record of them (taskNotFound) or no answer")


def find_problems(conn, report):
    """Fill the report's lists: incomplete tasks, images not archived and why, uploads."""
    report.missing = _rows(
        conn, f"SELECT task_uuid, status, number_results, results_received, errors_received,"
              f" created_at, reconcile_count FROM tasks WHERE {INCOMPLETE}"
              " AND created_at < ? ORDER BY created_at LIMIT 100", (later(-60),))
    now = utcnow()
    report.images = _rows(
        conn, "SELECT image_uuid, task_uuid, archive_state, archive_error, archive_attempts,"
              " url_expires_at, CASE"
              " WHEN archive_state IN ('failed', 'refused') THEN archive_error"
              " WHEN image_url IS NULL THEN 'no image URL and no inline data'"
              " ELSE 'the URL expired at ' || url_expires_at || ' before it was archived'"
              " END AS reason FROM results WHERE archive_state IN ('failed', 'refused')"
              " OR (archive_state = 'pending' AND (image_url IS NULL OR url_expires_at < ?))"
              " ORDER BY id LIMIT 100", (now,))
    report.unmatched_uploads = uploads.unmatched(conn)


def retry_failed(catalogue):
    """Put failed and refused downloads back in the queue (after a fix to the allowlist
    or the network); returns how many."""
    with catalogue.write() as conn:
        return conn.execute(
            "UPDATE results SET archive_state = 'pending', archive_attempts = 0,"
            " next_attempt_at = NULL, claimed_by = NULL, claimed_until = NULL"
            " WHERE archive_state IN ('failed', 'refused') AND image_url IS NOT NULL"
        ).rowcount


def reconcile(app, *, after=None, retry=False):
    """One full pass for the app; returns a :class:`Report`."""
    cfg, catalogue = app.config, app.extensions["catalogue"]
    report = Report()
    if retry:
        report.retried = retry_failed(catalogue)
    after = cfg["RUNWARE_ARCHIVE_RECONCILE_AFTER"] if after is None else after
    due = due_tasks(catalogue.conn, after=after,
                    interval=min(after, cfg["RUNWARE_ARCHIVE_RECONCILE_INTERVAL"]))
    if due:
        ask_provider(catalogue, provider_client(app), due, inline_prepare(app), report)
    report.lost = mark_lost(catalogue)
    uploads.match_pending(catalogue)
    find_problems(catalogue.conn, report)
    return report


def reconcile_and_log(app):
    """The worker's periodic pass: :func:`reconcile`, summarised in the log."""
    report = reconcile(app)
    if report.asked or report.problems or report.lost:
        log.info("reconcile: asked %d tasks, %d new results, %d errors, %d still processing,"
                 " %d unknown to the provider, %d lost; %s", len(report.asked),
                 report.new_results, report.new_errors, report.processing,
                 len(report.not_found), len(report.lost),
                 "; ".join(report.problems) or "no problems")
    return report
