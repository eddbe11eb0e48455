"""Export and import of the archive (no Flask): a zip of originals and a JSON-lines manifest.

``FILE.zip`` holds::

    manifest.jsonl          {"format": "runware-archive-export", "version": 1, ...}   header
                            {"task": {...}, "results": [{...}, ...]}                   a task
                            ...                                      (oldest first, so parents
                                                                      come before re-runs)
                            {"end": {"tasks": N, "results": N, "files": N}}           footer
    images/<sha256>.<ext>   each archived original once, byte for byte

Every column of ``tasks`` and ``results`` is kept (``params`` as a JSON object) except row
ids and fetch claims: parameters, seeds, costs, sha256, provider, lineage, timestamps. An
export always includes the ancestors of the tasks it selects, so lineage survives a filter.
Both directions hash every file: an export refuses a file that no longer matches its
sha256, an import one that does not match its name.

An import is one more way results arrive: each task's results go through the one ingest
(:meth:`archive.catalogue.Catalogue.ingest`, source ``import``), so a task the target holds
in part gets the same status, counters and cost as if the webhook had brought the rest,
and the delivery log has a row for it. Each archived result is then marked archived as the
file verified here (:func:`archive.catalogue.mark_archived`). Importing is idempotent:
tasks and results already present (same taskUUID / imageUUID) are left as they are, except
that a result not yet archived here is completed from the file.
"""

import contextlib
import hashlib
import io
import json
import os
import re
import sqlite3
import zipfile
from dataclasses import dataclass, field

from archive.catalogue import mark_archived, utcnow
from archive.images import BadImage
from archive.states import ARCHIVED

FORMAT, VERSION = "runware-archive-export", 1
MANIFEST = "manifest.jsonl"
RESULT_SKIP = ("id", "claimed_by", "claimed_until")
ARCHIVE_COLUMNS = ("archive_state", "archive_error", "sha256", "file_ext", "file_size",
                   "img_width", "img_height", "archived_at")
MEMBER = re.compile(r"^[0-9a-f]{64}\.(jpg|png|webp)$")
# The counters a task's results make: the ingest counts its results as they arrive, so
# a task new here starts with none (else every result would count twice).
# An imported task arrives uncounted (the ingest counts its results and costs) and belongs to
# no client key: a key id means another key, or none, in the archive it is imported into.
UNCOUNTED = {"results_received": 0, "cost": None, "cost_missing": 0, "key_id": None}


class ExchangeError(Exception):
    """An export or import that cannot be done as asked; nothing was changed."""


@dataclass
class Summary:
    """What an export wrote or an import changed."""

    tasks: int = 0
    results: int = 0
    files: int = 0
    updated: int = 0
    skipped: list = field(default_factory=list)


def _rows(conn, sql, args=()):
    cur = conn.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def select_tasks(db, *, since=None, query=None):
    """The task rows to export, oldest first (a generator): those created at or after
    ``since`` (ISO date or time, UTC) whose prompts match ``query`` (every word), plus
    their ancestors."""
    sql, args = "SELECT task_uuid, parent_task_uuid FROM tasks WHERE 1", []
    if since:
        sql += " AND created_at >= ?"
        args.append(since)
    if query:
        sql += " AND id IN (SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH ?)"
        args.append(db.quote_fts(query))
    picked = {uuid: parent for uuid, parent in db.conn.execute(sql, args)}
    missing = {p for p in picked.values() if p and p not in picked}
    while missing:
        marks = ",".join("?" * len(missing))
        found = dict(db.conn.execute(f"SELECT task_uuid, parent_task_uuid FROM tasks"
                                     f" WHERE task_uuid IN ({marks})", list(missing)))
        picked.update(found)
        missing = {p for p in found.values() if p and p not in picked}
    cur = db.conn.execute("SELECT * FROM tasks ORDER BY created_at, id")
    names = [d[0] for d in cur.description]
    for row in cur:  # a cursor, not a list: memory stays flat for a big catalogue
        if row[names.index("task_uuid")] in picked:
            yield dict(zip(names, row))


def export(catalogue, store, out_path, *, since=None, query=None):
    """Write the archive (or the selected part) to ``out_path``; returns a :class:`Summary`.

    :raises ExchangeError: an archived file is missing or no longer matches its sha256
        (nothing is left at ``out_path``).
    """
    tasks = select_tasks(catalogue.db, since=since, query=query)
    tmp, summary, written = f"{out_path}.{os.getpid()}.part", Summary(), set()
    lines, lines_path = store.temp_file()  # a zip takes one member at a time
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
            with io.TextIOWrapper(lines, encoding="utf-8") as manifest:
                _line(manifest, {"format": FORMAT, "version": VERSION,
                                 "exportedAt": utcnow(), "since": since, "query": query})
                for task in tasks:
                    results = _rows(catalogue.conn, "SELECT * FROM results"
                                    " WHERE task_uuid = ? ORDER BY id", (task["task_uuid"],))
                    _line(manifest, _task_line(task, results))
                    summary.tasks += 1
                    summary.results += len(results)
                    for r in results:
                        if r["archive_state"] == ARCHIVED and r["sha256"] not in written:
                            written.add(r["sha256"])
                            _export_file(zf, store, r["sha256"], r["file_ext"])
                summary.files = len(written)
                _line(manifest, {"end": {"tasks": summary.tasks, "results": summary.results,
                                         "files": summary.files}})
            zf.write(lines_path, MANIFEST)
        os.replace(tmp, out_path)
    finally:
        for path in (tmp, lines_path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
    return summary


def _line(stream, obj):
    stream.write(json.dumps(obj, ensure_ascii=False, sort_keys=True) + "\n")


def _task_line(task, results):
    task = {k: v for k, v in task.items() if k != "id"}
    task["params"] = json.loads(task["params"])
    return {"task": task, "results": [{k: v for k, v in r.items() if k not in RESULT_SKIP}
                                      for r in results]}


def _export_file(zf, store, sha256, ext):
    """Copy one original into the zip (stored, not compressed), hashing it on the way.

    Members of a zip being written cannot be overwritten, so the check happens after the
    copy; the ExchangeError then discards the whole temporary zip.
    """
    digest = hashlib.sha256()
    info = zipfile.ZipInfo(f"images/{sha256}.{ext}", date_time=(2000, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_STORED
    try:
        with store.open(sha256, ext) as src, zf.open(info, "w") as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                digest.update(chunk)
                dst.write(chunk)
    except FileNotFoundError:
        raise ExchangeError(f"archived file {sha256}.{ext} is missing from the store") from None
    if digest.hexdigest() != sha256:
        raise ExchangeError(f"file {sha256}.{ext} no longer matches its sha256")


def manifest_entries(zf):
    """The task lines of an export, read one at a time (a generator).

    :raises ExchangeError: not an export of this format, or cut short (raised when the
        reader reaches the end, so a caller that reads everything first writes nothing).
    """
    try:
        with zf.open(MANIFEST) as raw:
            lines = (json.loads(line) for line in io.TextIOWrapper(raw, encoding="utf-8")
                     if line.strip())
            header = next(lines, {})
            if header.get("format") != FORMAT or header.get("version") != VERSION:
                raise ExchangeError(f"not a {FORMAT} version {VERSION} file")
            for line in lines:
                if "end" in line:
                    return
                yield line
    except (KeyError, ValueError) as exc:
        raise ExchangeError(f"not a runware-archive export: {exc}") from None
    raise ExchangeError("the manifest is incomplete (no end line)")


def import_archive(catalogue, store, zip_path):
    """Restore an export into ``catalogue`` and ``store``; returns a :class:`Summary`.

    Every file is hashed and checked as an image before any row is written; the rows go
    in one transaction (the ingests of every task included), so a failed import leaves
    nothing.
    :raises ExchangeError: a bad file, a sha256 mismatch, a task whose parent is absent.
    """
    summary = Summary()
    try:
        zf = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise ExchangeError(f"cannot read {zip_path}: {exc}") from None
    added = []  # new to the store, removed again if the import fails
    try:
        with zf:
            files = _import_files(zf, store, added)
            try:  # pass 2: every row, in one transaction
                with catalogue.write() as conn:
                    columns = {t: _columns(conn, t) for t in ("tasks", "results")}
                    arrival = Arrival(catalogue, conn, columns, files,
                                      f"imported from {os.path.basename(zip_path)}")
                    for entry in manifest_entries(zf):
                        _import_task(arrival, entry, summary)
            except sqlite3.IntegrityError as exc:
                raise ExchangeError(f"the rows do not fit this catalogue: {exc}") from None
    except ExchangeError:
        for sha256 in added:
            store.delete_unreferenced(catalogue, sha256, grace=0)
        raise
    summary.files = len(added)
    return summary


def _import_files(zf, store, added):
    """Pass 1: every archived file of the export, verified and in the store; returns
    ``{sha256: StoredImage}``, and appends to ``added`` those new to the store."""
    files = {}
    for entry in manifest_entries(zf):
        for result in entry["results"]:
            if result["archive_state"] != ARCHIVED or result["sha256"] in files:
                continue
            stored, new = _import_file(zf, store, result["sha256"], result["file_ext"])
            files[result["sha256"]] = stored
            if new:
                added.append(stored.sha256)
    return files


def _import_file(zf, store, sha256, ext):
    """Hash the member into a temporary file and add it to the store; returns the
    :class:`~archive.images.StoredImage` and whether it is new to the store."""
    name = f"{sha256}.{ext}"
    if not MEMBER.match(name):
        raise ExchangeError(f"bad file name in the manifest: {name!r}")
    existed = store.has(sha256, ext)
    digest, size = hashlib.sha256(), 0
    f, tmp = store.temp_file()
    try:
        with f, zf.open(f"images/{name}") as src:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                size += len(chunk)
                if size > store.max_bytes:
                    raise ExchangeError(f"{name} is over the {store.max_bytes}-byte limit")
                digest.update(chunk)
                f.write(chunk)
        if digest.hexdigest() != sha256:
            raise ExchangeError(f"{name}: the bytes do not match the sha256 in its name")
        stored = store.add_file(tmp, sha256=sha256)
    except KeyError:
        raise ExchangeError(f"{name} is in the manifest but not in the zip") from None
    except BadImage as exc:
        raise ExchangeError(f"{name}: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return stored, not existed


def _columns(conn, table):
    return {name for (_, name, *_rest) in conn.execute(f"PRAGMA table_info({table})")} - {"id"}


def _insert(conn, table, columns, row):
    """INSERT OR IGNORE of the keys this catalogue has (an export from a newer version
    may carry more); returns 1 if a row was added."""
    row = {k: v for k, v in row.items() if k in columns}
    return conn.execute(
        f"INSERT OR IGNORE INTO {table} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
        list(row.values()),
    ).rowcount


@dataclass
class Arrival:
    """What every task line of one import is ingested with."""

    catalogue: object
    conn: sqlite3.Connection  # the import's one write transaction
    columns: dict  # table -> the column names this catalogue has
    files: dict  # sha256 -> the StoredImage verified in pass 1
    note: str  # the delivery log's reason: which file the results came from


def _import_task(arrival, entry, summary):
    """One task line: the task row if it is new here, its results through the one ingest
    when any is new here, then each archived one marked archived as its file."""
    conn, results = arrival.conn, entry["results"]
    task = dict(entry["task"], params=json.dumps(entry["task"]["params"], sort_keys=True))
    new_task = _insert(conn, "tasks", arrival.columns["tasks"], dict(task, **UNCOUNTED))
    summary.tasks += new_task
    here = _present(conn, [r["image_uuid"] for r in results])
    if len(here) < len(results):  # nothing new: no arrival, no line in the log
        summary.results += _ingest_results(arrival, task["task_uuid"], entry)
    if new_task:
        _keep_record(conn, task)
    for result in results:
        if result["archive_state"] == ARCHIVED and mark_archived(
                conn, result["image_uuid"], arrival.files[result["sha256"]],
                at=result["archived_at"]) and result["image_uuid"] in here:
            summary.updated += 1


def _ingest_results(arrival, task_uuid, entry):
    """The task's exported results, one delivery to the one ingest; how many were new.

    The ingest dedupes, counts and costs them; ``columns_for`` hands it the columns the
    source recorded (when each arrived, its URL's expiry, the raw item...), which a
    webhook's ingest would have computed at arrival.
    """
    names = arrival.columns["results"]
    kept = {r["image_uuid"]: _kept_columns(r, names) for r in entry["results"]}
    outcome = arrival.catalogue.ingest(
        task_uuid, results=[{"imageUUID": r["image_uuid"], "cost": r["cost"]}
                            for r in entry["results"]],
        source="import", raw_body=json.dumps(entry, sort_keys=True), note=arrival.note,
        columns_for=lambda item: kept[item["imageUUID"]], conn=arrival.conn)
    return len(outcome.new)


def _kept_columns(result, names):
    """The exported result's columns this catalogue has, but for the keys and, when it
    is archived, its file's columns: those come from the file verified here."""
    skip = {"image_uuid", "task_uuid"}
    if result["archive_state"] == ARCHIVED:
        skip.update(ARCHIVE_COLUMNS)
    return {k: v for k, v in result.items() if k in names and k not in skip}


def _keep_record(conn, task):
    """A task new here is the source's record: its status and times were decided there,
    by the same rules, from these same results. The ingest recounted them (results and
    cost); deciding the status again would turn a task the source gave up on (``lost``)
    into ``partial``, and date every task to the import."""
    conn.execute("UPDATE tasks SET status = ?, updated_at = ?, completed_at = ?"
                 " WHERE task_uuid = ?", (task["status"], task["updated_at"],
                                          task["completed_at"], task["task_uuid"]))


def _present(conn, image_uuids):
    """Which of ``image_uuids`` this catalogue holds already."""
    if not image_uuids:
        return set()
    marks = ",".join("?" * len(image_uuids))
    return {row[0] for row in conn.execute(
        f"SELECT image_uuid FROM results WHERE image_uuid IN ({marks})", image_uuids)}
