"""Reconciliation: ask the provider for what a task is still missing, and report what the
archive could not keep, so nothing delivered is left unrecorded without a visible reason.

A task with fewer results (and errors) than ``numberResults`` once
``RUNWARE_ARCHIVE_RECONCILE_AFTER`` seconds have passed since it was created is asked for
with ``getResponse`` (runware-api.md §5), at most once per
``RUNWARE_ARCHIVE_RECONCILE_INTERVAL`` and for up to a week; what comes back goes through
the one ingest function (source ``getResponse``). ``taskNotFound`` and its kin are no
information (:mod:`receiver.provider.replies`): the task keeps its state and is asked again,
and in the same pass it is asked for with ``getTaskDetails``
(:mod:`receiver.provider.task_details`), whose answer goes through the same ingest. A task
still missing results when the week is over is marked ``lost``: it is finished, its estimate
leaves the in-flight sum, and the report names it. The report also lists the tasks still
missing results, the images that failed, were refused or whose URL expired before they were
archived, and the uploads that matched no result.
"""

import json
import logging
from dataclasses import dataclass, field


from archive import recovery, uploads
from receiver.storage import inline_columns
from receiver.provider.client import provider_client
from receiver.provider.replies import ask, ingest_reply
from receiver.provider.task_details import recover

log = logging.getLogger(__name__)


@dataclass
class Report:
    """What one reconcile pass asked, got and found wrong."""

    asked: list = field(default_factory=list)
    new_results: int = 0
    new_errors: int = 0
    processing: int = 0
    not_found: list = field(default_factory=list)
    recovered: list = field(default_factory=list)
    lost: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    images: list = field(default_factory=list)
    unmatched_uploads: list = field(default_factory=list)
    retried: int = 0


def ask_provider(catalogue, client, task_uuids, columns_for, report):
    """One ``getResponse`` POST for ``task_uuids``; ingest what it brings."""
    recovery.mark_asked(catalogue, task_uuids)
    report.asked.extend(task_uuids)
    reply = ask(client, "getResponse", task_uuids, report.problems)
    if reply is None:
        return
    status, body = reply
    for uuid in task_uuids:
        outcome = ingest_reply(catalogue, uuid, body, source="getResponse",
                               columns_for=columns_for)
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


def find_problems(conn, report):
    """Fill the report's lists: incomplete tasks, images not archived and why, uploads."""
    report.missing = recovery.missing_tasks(conn)
    report.images = recovery.unarchived_images(conn)
    report.unmatched_uploads = uploads.unmatched(conn)


def reconcile(app, *, after=None, retry=False):
    """One full pass for the app; returns a :class:`Report`."""
    cfg, catalogue = app.config, app.extensions["catalogue"]
    report = Report()
    if retry:
        report.retried = recovery.retry_failed(catalogue)
    after = cfg["RUNWARE_ARCHIVE_RECONCILE_AFTER"] if after is None else after
    due = recovery.due_tasks(catalogue.conn, after=after,
                    interval=min(after, cfg["RUNWARE_ARCHIVE_RECONCILE_INTERVAL"]))
    if due:
        ask_provider(catalogue, provider_client(app), due, inline_columns(app), report)
    if report.not_found:
        recover(catalogue, provider_client(app), report.not_found, inline_columns(app), report)
    report.lost = recovery.mark_lost(catalogue)
    uploads.match_pending(catalogue)
    find_problems(catalogue.conn, report)
    return report


def reconcile_and_log(app):
    """The worker's periodic pass: :func:`reconcile`, summarised in the log."""
    report = reconcile(app)
    if report.asked or report.problems or report.lost:
        log.info("reconcile: asked %d tasks, %d new results, %d errors, %d still processing,"
                 " %d unknown to getResponse, %d recovered by getTaskDetails, %d lost; %s",
                 len(report.asked), report.new_results, report.new_errors, report.processing,
                 len(report.not_found), len(report.recovered), len(report.lost),
                 "; ".join(report.problems) or "no problems")
    return report
