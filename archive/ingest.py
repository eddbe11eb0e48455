"""The one ingest, inside its write transaction: every result that comes in (webhook, sync
reply, ``getResponse``, import) is stored here, through
:meth:`archive.catalogue.Catalogue.ingest`, so dedupe, the status rule, the cost rule and
the delivery log's row live in one place.

Results are stored once by imageUUID; failures once by imageUUID, else by code and
message; a task's status comes from its counts (:func:`next_status`) and its cost is the
sum of what Runware returned.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from archive.records import UnknownTask, elide_inline, utcnow
from archive.states import COMPLETE, ERROR, PARTIAL, PENDING


def next_status(received, wanted, has_error, current):
    """A task's status from its counts: ``complete`` wins, then ``error``, then ``partial``."""
    if received >= wanted:
        return COMPLETE
    if has_error:
        return ERROR
    if received:
        return PARTIAL
    return current


@dataclass
class IngestResult:
    """What one delivery changed."""

    task_uuid: str
    new: list = field(default_factory=list)
    duplicates: list = field(default_factory=list)
    errors: int = 0
    status: str = ""
    delivery_id: int = 0

    progress: int = 0

    @property
    def verdict(self):
        """``accepted`` if an image was new; ``failed`` if only failures were; ``progress``
        for progress alone; else ``duplicate``."""
        if self.new:
            return "accepted"
        if self.errors:
            return "failed"
        return "progress" if self.progress and not self.duplicates else "duplicate"


def store_delivery(conn, task_uuid, results, errors, extra, log, progress):
    """Store one parsed delivery inside the caller's (shared) write transaction: the body
    of :meth:`archive.catalogue.Catalogue.ingest`.

    Four statements on the hot path: read the task, insert the results, update the
    task's counters (computed here from the row just read: writes are serialised, so
    it is current), log the delivery.
    """
    now = utcnow()
    outcome = IngestResult(task_uuid, progress=progress)
    task = conn.execute(
        "SELECT number_results, status, ttl, results_received, cost, cost_missing"
        " FROM tasks WHERE task_uuid = ?", (task_uuid,),
    ).fetchone()
    if task is None:
        raise UnknownTask(task_uuid)
    new_costs = []
    for item, cols in zip(results, extra):
        if _insert_result(conn, task_uuid, item, cols, now, task[2]):
            outcome.new.append(item["imageUUID"])
            new_costs.append(item.get("cost"))
        else:
            outcome.duplicates.append(item["imageUUID"])
    errors = [e for e in errors if _insert_error(conn, task_uuid, e, now)]
    outcome.errors = len(errors)
    if outcome.new or errors:
        outcome.status = _update_task(conn, task_uuid, task, new_costs, errors, now)
    else:
        outcome.status = task[1]
    cur = conn.execute(
        "INSERT INTO deliveries (received_at, source, task_uuid, verdict, reason,"
        " status_code, results_new, results_duplicate, errors, body, body_size,"
        " remote_addr, content_type) VALUES (?, ?, ?, ?, ?, 200, ?, ?, ?, ?, ?, ?, ?)",
        (now, log["source"], task_uuid, outcome.verdict, log["reason"], len(outcome.new),
         len(outcome.duplicates), len(errors), log["body"], log["body_size"],
         log["remote_addr"], log["content_type"]),
    )
    outcome.delivery_id = cur.lastrowid
    return outcome

def _insert_result(conn, task_uuid, item, cols, now, ttl):
    output_kind, image_url = "URL", item.get("imageURL")
    if image_url is None:
        output_kind = "base64Data" if "imageBase64Data" in item else "dataURI"
    row = {
        "image_uuid": item["imageUUID"], "task_uuid": task_uuid, "received_at": now,
        "seed": item.get("seed"), "cost": item.get("cost"),
        "nsfw": item.get("NSFWContent"), "image_url": image_url,
        "output_kind": output_kind, "archive_state": PENDING,
        "url_expires_at": expiry(now, ttl) if image_url and ttl else None,
        "raw": json.dumps(elide_inline(item), sort_keys=True),
    }
    row.update(cols)
    marks = ", ".join("?" for _ in row)
    cur = conn.execute(
        f"INSERT OR IGNORE INTO results ({', '.join(row)}) VALUES ({marks})",
        list(row.values()),
    )
    return cur.rowcount == 1

def _insert_error(conn, task_uuid, item, now):
    """Record an error item once; False when the same error was already recorded.

    An error naming its image is that image's failure, once however often it comes.
    One without is known by its code and message alone, so the same failure told by
    the webhook (a nested ``error``) and by ``getResponse`` (flat, with
    ``documentation``) counts once.
    """
    image_uuid = item.get("imageUUID")
    if image_uuid:
        fingerprint = f"image:{image_uuid}"
    else:
        fingerprint = hashlib.sha256(json.dumps(
            [item.get("code"), item.get("message")], default=str).encode()).hexdigest()
    return conn.execute(
        "INSERT OR IGNORE INTO task_errors (task_uuid, fingerprint, code, message,"
        " received_at, image_uuid) VALUES (?, ?, ?, ?, ?, ?)",
        (task_uuid, fingerprint, item.get("code"), item.get("message"), now, image_uuid),
    ).rowcount == 1

def _update_task(conn, task_uuid, task, new_costs, errors, now):
    wanted, current, _, received, cost, missing = task
    received += len(new_costs)
    returned = [c for c in new_costs if c is not None]
    if returned:
        cost = (cost or 0) + sum(returned)
    missing += len(new_costs) - len(returned)
    code = message = None
    if errors:
        code = errors[-1].get("code") or "providerError"
        message = errors[-1].get("message") or code
    has_error = bool(errors) or current == ERROR
    status = next_status(received, wanted, has_error, current)
    conn.execute(
        "UPDATE tasks SET status = ?, results_received = ?, cost = ?, cost_missing = ?,"
        " errors_received = errors_received + ?, error_code = coalesce(?, error_code),"
        " error_message = coalesce(?, error_message), updated_at = ?,"
        f" completed_at = CASE WHEN ? = '{COMPLETE}' THEN coalesce(completed_at, ?)"
        " ELSE completed_at END WHERE task_uuid = ?",
        (status, received, cost, missing, len(errors), code, message, now,
         status, now, task_uuid),
    )
    return status


NEVER = "9999-12-31T23:59:59.999999Z"  # past every date the text form can hold


def expiry(now, ttl):
    """When a hosted URL with ``ttl`` seconds of life, delivered at ``now``, expires; a ttl
    past the year 9999 (no source caps it) is :data:`NEVER`."""
    start = datetime.strptime(now, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    try:
        return (start + timedelta(seconds=ttl)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    except OverflowError:
        return NEVER
