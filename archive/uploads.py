"""Images the provider PUTs to our ``uploadEndpoint``, and how each finds its result.

Runware PUTs the raw bytes of each finished image to the task's one ``uploadEndpoint``,
with no documented header naming the image and no documented order against the webhook
(runware-api.md §6). An upload is therefore stored at once (verified, content-addressed)
and recorded in ``uploads``; it is matched to a result of its task by, in order:

1. **identity**: an ``imageUUID`` given in the upload URL's query names the result;
2. **content**: a result of the task whose image has the same sha256 (inline data, or
   the URL the fetcher downloaded): the upload confirms it;
3. **uniqueness**: a task of ``numberResults`` 1 has one result, so its one upload is
   its image, whichever of PUT and webhook arrives first. The result is then archived
   from the upload and the fetcher has nothing to download.

With a bucket store, the ``uploadEndpoint`` may be a presigned PUT straight into the bucket
(:meth:`archive.images.ImageStore.upload_endpoint`): the image never passes through the
service. :func:`take_incoming` then brings that object in, once the webhook says an image
is done (the fetcher, before it downloads) or on the worker's next pass: checked (its size
and MD5 against what the bucket says, then decoded and hashed like every upload), stored
at its content address and recorded and matched here like a PUT to ``/uploads/``. All the
images of one task share its one URL, so a later image's PUT replaces an earlier one not
yet taken; that image is still archived from its ``imageURL``.

Never by arrival order among several images of one task: a wrong guess would attach an
image to another image's seed, which a reproducibility archive must not do. An upload no
rule matches stays visible as unmatched (``runware-archive reconcile`` lists them).

An upload brings bytes, never a result: it writes only ``uploads``, and a result it
archives is one the one ingest (:meth:`archive.catalogue.Catalogue.ingest`) stored,
archived through :func:`archive.catalogue.mark_archived` like a download.
"""

import logging
import os
from dataclasses import dataclass

from archive.catalogue import UnknownTask, mark_archived, utcnow
from archive.images import BadImage, StoredImage
from archive.states import ARCHIVED

log = logging.getLogger(__name__)
RECENT = "-1 day"  # matching passes look at uploads this recent (SQLite modifier)


@dataclass
class UploadOutcome:
    """What one PUT stored."""

    upload_id: int
    sha256: str
    ext: str
    new: bool
    matched_to: str = None


def record_upload(catalogue, store, task_uuid, tmp_path, *, image_uuid=None,
                  remote_addr=None):
    """Verify and store the uploaded file at ``tmp_path`` (consumed) for ``task_uuid``.

    :raises archive.images.BadImage: not an acceptable image; nothing recorded.
    :raises UnknownTask: no such task; nothing recorded or kept.
    """
    if not _task_exists(catalogue.conn, task_uuid):
        os.unlink(tmp_path)
        raise UnknownTask(task_uuid)
    stored = store.add_file(tmp_path)
    now = utcnow()
    with catalogue.write() as conn:
        if not _task_exists(conn, task_uuid):  # deleted meanwhile
            raise UnknownTask(task_uuid)
        row = conn.execute(
            "SELECT id FROM uploads WHERE task_uuid = ? AND sha256 = ?", (task_uuid, stored.sha256)
        ).fetchone()
        new = row is None
        if new:  # a repeated PUT of the same bytes is stored once
            row = (conn.execute(
                "INSERT INTO uploads (task_uuid, received_at, sha256, file_ext, file_size,"
                " img_width, img_height, image_uuid, remote_addr)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (task_uuid, now, stored.sha256, stored.ext, stored.size, stored.width,
                 stored.height, image_uuid, remote_addr),
            ).lastrowid,)
        match_uploads(conn, task_uuid)
        matched = conn.execute("SELECT image_uuid, matched_at FROM uploads WHERE id = ?",
                               (row[0],)).fetchone()
    return UploadOutcome(row[0], stored.sha256, stored.ext, new,
                         matched[0] if matched[1] else None)


def take_incoming(catalogue, store, task_uuid):
    """Bring in the image PUT straight into the store for ``task_uuid``, if any: checked,
    stored, recorded and matched (:func:`record_upload`), then removed from ``incoming/``.
    Returns the :class:`UploadOutcome`, or None when there was none or it was refused (an
    object that is no image, or whose task is gone, is removed and logged)."""
    try:
        tmp = store.take_incoming(task_uuid)
    except BadImage as exc:
        log.warning("upload of task %s refused: %s", task_uuid, exc)
        store.drop_incoming(task_uuid)
        return None
    if tmp is None:
        return None
    try:
        outcome = record_upload(catalogue, store, task_uuid, tmp, remote_addr="bucket")
    except (BadImage, UnknownTask) as exc:
        log.warning("upload of task %s refused: %s", task_uuid, exc or "unknown task")
        outcome = None
    store.drop_incoming(task_uuid)
    return outcome


def take_all_incoming(catalogue, store):
    """:func:`take_incoming` for every task with an image in ``incoming/`` (the worker's
    housekeeping: an inline result has nothing to download); returns how many came in."""
    return sum(take_incoming(catalogue, store, task_uuid) is not None
               for task_uuid in store.incoming_tasks())


def sent_to_store(conn, store, task_uuid):
    """Whether the task was sent with the store's own ``uploadEndpoint`` for it (the
    catalogue keeps it without its signature), rather than this service's route."""
    own = store.upload_endpoint(task_uuid, expires=60)
    if own is None:
        return False
    row = conn.execute("SELECT json_extract(params, '$.uploadEndpoint') FROM tasks"
                       " WHERE task_uuid = ?", (task_uuid,)).fetchone()
    return bool(row and row[0] == own[1])


def _task_exists(conn, task_uuid):
    return conn.execute("SELECT 1 FROM tasks WHERE task_uuid = ?", (task_uuid,)).fetchone() \
        is not None


def match_uploads(conn, task_uuid):
    """Match the task's unmatched uploads to its results (rules in the module docstring),
    inside the caller's write transaction; returns how many were matched."""
    uploads = _rows(conn, "SELECT * FROM uploads WHERE task_uuid = ? AND matched_at IS NULL"
                          " ORDER BY id", task_uuid)
    if not uploads:
        return 0
    results = _rows(conn, "SELECT id, image_uuid, sha256, archive_state FROM results"
                          " WHERE task_uuid = ? ORDER BY id", task_uuid)
    wanted = conn.execute("SELECT number_results FROM tasks WHERE task_uuid = ?",
                          (task_uuid,)).fetchone()[0]
    matched = 0
    for upload in uploads:
        target, rule = _target(upload, results, wanted)
        if target is None:
            continue
        if target["archive_state"] != ARCHIVED:
            mark_archived(conn, target["image_uuid"], StoredImage.recorded(upload))
            target.update(archive_state=ARCHIVED, sha256=upload["sha256"])
        conn.execute("UPDATE uploads SET image_uuid = ?, matched_by = ?, matched_at = ?"
                     " WHERE id = ?", (target["image_uuid"], rule, utcnow(), upload["id"]))
        matched += 1
    return matched


def _target(upload, results, wanted):
    """The result ``upload`` belongs to and the rule that says so, or ``(None, None)``."""
    if upload["image_uuid"]:
        named = [r for r in results if r["image_uuid"] == upload["image_uuid"]]
        return (named[0], "imageUUID") if named else (None, None)
    same = [r for r in results if r["sha256"] == upload["sha256"]]
    if same:
        return same[0], "sha256"
    if wanted == 1 and len(results) == 1 and results[0]["archive_state"] != ARCHIVED:
        return results[0], "only result"
    return None, None


def match_pending(catalogue):
    """Run :func:`match_uploads` for every task with a recent unmatched upload (the
    worker's housekeeping: a webhook may arrive after its upload); returns the count."""
    tasks = [row[0] for row in catalogue.conn.execute(
        "SELECT DISTINCT task_uuid FROM uploads WHERE matched_at IS NULL"
        " AND received_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?)", (RECENT,))]
    matched = 0
    for task_uuid in tasks:
        with catalogue.write() as conn:
            matched += match_uploads(conn, task_uuid)
    return matched


def unmatched(conn, *, limit=100):
    """Uploads no rule matched yet, oldest first (for the reconcile report)."""
    return _rows(conn, "SELECT * FROM uploads WHERE matched_at IS NULL ORDER BY id LIMIT ?",
                 limit)


def _rows(conn, sql, *args):
    cur = conn.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]
