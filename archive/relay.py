"""Relaying a ``/v1`` client's own webhook (schema: migration 18), no Flask.

The archive keeps its own webhook with the provider; a client that sent a ``webhookURL``
gets each result POSTed there too, once it is in the catalogue. Nothing is queued on the
webhook's hot path: :func:`sweep` (in the worker) finds the results and failed images of
watched tasks that are not queued yet and queues them in the order they arrived, so a
crash between a delivery's COMMIT and any hook cannot lose a relay, and results brought by
a sync reply or the reconcile pass are relayed as well as webhooks. A client's
``uploadEndpoint`` gets each image PUT once the archive holds it (read from the image
store: the provider's URL may have expired), before that image's webhook, as Runware does.

A destination is called only if it is among its key's relay hosts *and* passes the image
download's SSRF rules (:mod:`archive.safe_fetch`: https unless the entry says ``http://``,
public addresses only unless the entry is that very IP literal, the checked address
pinned, no redirect followed). Retries back off exponentially with jitter, as Svix and
Hookdeck do; each attempt is a row in the delivery log (source ``relay``, verdict
``relayed`` or ``relay-failed``): verdicts of their own, so they count apart from what the
archive received, and the log's retention prunes them as it does refusals and progress.
"""

import http.client
import json
import mimetypes
import time

from archive import safe_fetch
from archive import records
from archive.records import rows, utcnow

SOURCE = "relay"
MAX_WAIT = 600.0  # seconds: the longest wait between two attempts
TIMEOUT = 15.0  # seconds one attempt may take, connection and answer
LEASE = 4 * TIMEOUT  # a claim outlives any attempt, so a live sender never loses its row
PASS_SECONDS = 20.0  # one pass stops claiming after this, so other housekeeping runs
WAIT_FOR_IMAGE = 1.0  # seconds between looks at an image the fetcher has still to archive
ENDED = ("complete", "error", "lost")  # archive.states.FINAL, literal for the SQL below


def parse_hosts(entries):
    """The key's relay hosts, each ``https://host[:port]`` or ``http://host[:port]``,
    normalised by :func:`archive.safe_fetch.parse_entry`; :raises ValueError: one is not."""
    hosts = []
    for entry in entries:
        safe_fetch.parse_entry(entry)
        text = entry.strip().lower().rstrip("/")
        hosts.append(text if "://" in text else f"https://{text}")
    return sorted(set(hosts))


def hosts_of(key):
    """The relay hosts stored with ``key`` (a row of ``client_keys``)."""
    return json.loads(key.get("relay_hosts") or "[]")


def policy_for(hosts):
    """The SSRF policy of one key's relay hosts: no redirects (a webhook is not one)."""
    return safe_fetch.Policy(hosts, total_timeout=TIMEOUT, max_redirects=0)


def refusal(hosts, url):
    """Why ``url`` may not be called for a key with ``hosts``, or None. The address
    checks run again before each attempt (a name may resolve elsewhere by then)."""
    if not hosts:
        return "the client key has no relay hosts (runware-archive keys create --relay-host)"
    try:
        policy_for(hosts).check(url)
    except safe_fetch.Refused as exc:
        return _reworded(exc)
    return None


def _reworded(exc):
    return str(exc).replace("the image host allowlist", "the client key's relay hosts")


def watch(catalogue, task_uuid, key_id, url, *, upload=None):
    """Relay the results of ``task_uuid`` to ``url`` (None: none) from now on, each
    archived image PUT to ``upload`` first when there is one."""
    with catalogue.write() as conn:
        conn.execute("INSERT OR IGNORE INTO relay_targets (task_uuid, key_id, webhook_url,"
                     " upload_url, created_at) VALUES (?, ?, ?, ?, ?)",
                     (task_uuid, key_id, url or "", upload, utcnow()))


def sweep(catalogue, body_for):
    """Queue every result and failure of the watched tasks not queued yet, oldest first;
    ``body_for(kind, task_uuid, row)`` (kind ``result`` or ``failure``) makes the JSON
    object sent. Returns how many were queued. Looked for first without the write lock,
    which runs every second and must not hold up the webhooks when there is nothing."""
    if not (_unqueued(catalogue.conn) or _closable(catalogue.conn)):
        return 0
    with catalogue.write() as conn:
        found = _unqueued(conn)  # again under the lock: another worker may have swept
        now, epoch = utcnow(), time.time()
        for kind, key, row in found:
            body = {"taskUUID": row["task_uuid"], "imageUUID": row["image_uuid"]} \
                if kind == "upload" else body_for(kind, row["task_uuid"], row)
            conn.execute(
                "INSERT OR IGNORE INTO relay_queue (task_uuid, item_key, body, state,"
                " next_attempt_at, created_at) VALUES (?, ?, ?, 'pending', ?, ?)",
                (row["task_uuid"], key, json.dumps(body), epoch, now))
        conn.execute(f"UPDATE relay_targets SET closed_at = ? WHERE task_uuid IN ({CLOSABLE})",
                     (now,))
    return len(found)


# Watched tasks that may still bring something: not closed, or changed since.
OPEN = ("SELECT g.task_uuid FROM relay_targets g JOIN tasks t USING (task_uuid)"
        " WHERE g.closed_at IS NULL OR t.updated_at > g.closed_at")
# Open ones that have ended: once swept, nothing more is expected of them.
CLOSABLE = ("SELECT g.task_uuid FROM relay_targets g JOIN tasks t USING (task_uuid)"
            f" WHERE t.status IN {ENDED} AND (g.closed_at IS NULL OR t.updated_at > g.closed_at)")


def _closable(conn):
    return conn.execute(f"SELECT EXISTS ({CLOSABLE})").fetchone()[0]


def _queued(key):
    return (" NOT EXISTS (SELECT 1 FROM relay_queue q WHERE q.task_uuid = g.task_uuid"
            f" AND q.item_key = {key})")


KINDS = {"upload": 0, "result": 1, "failure": 2}  # an image's upload before its webhook


def _unqueued(conn):
    """``[(kind, item_key, row)]`` of the open targets' items not queued, by arrival."""
    webhook, upload = _queued("'r:' || r.image_uuid"), _queued("'u:' || r.image_uuid")
    failed = _queued("'e:' || e.fingerprint")
    results = rows(conn, "SELECT r.id, r.task_uuid, r.image_uuid, r.image_url, r.seed,"
                   " r.cost, r.nsfw, r.received_at, g.webhook_url, g.upload_url FROM"
                   " results r JOIN relay_targets g USING (task_uuid) WHERE r.task_uuid IN"
                   f" ({OPEN}) AND ((g.webhook_url != '' AND {webhook})"
                   f" OR (g.upload_url IS NOT NULL AND {upload}))")
    failures = rows(conn, "SELECT e.rowid AS id, e.task_uuid, e.image_uuid, e.code,"
                    " e.message, e.fingerprint, e.received_at FROM task_errors e JOIN"
                    f" relay_targets g USING (task_uuid) WHERE e.task_uuid IN ({OPEN}) AND"
                    f" g.webhook_url != '' AND {failed}")
    found = [("upload", f"u:{r['image_uuid']}", r) for r in results if r["upload_url"]]
    found += [("result", f"r:{r['image_uuid']}", r) for r in results if r["webhook_url"]]
    found += [("failure", f"e:{f['fingerprint']}", f) for f in failures]
    return sorted(found, key=lambda i: (i[2]["received_at"], KINDS[i[0]], i[2]["id"]))


DUE = ("SELECT q.id, q.task_uuid, q.item_key, q.body, q.attempts, g.webhook_url,"
       " g.upload_url, k.relay_hosts, k.revoked_at"
       " FROM relay_queue q JOIN relay_targets g USING (task_uuid)"
       " JOIN client_keys k ON k.id = g.key_id WHERE q.state = 'pending'"
       " AND q.next_attempt_at <= ? AND coalesce(q.claimed_until, 0) < ?"
       " AND NOT EXISTS (SELECT 1 FROM relay_queue p WHERE p.task_uuid = q.task_uuid"
       " AND p.state = 'pending' AND p.id < q.id) ORDER BY q.id LIMIT 1")


def claim(catalogue, now=None):
    """Claim the next due row of a task whose earlier rows are all settled (so a task's
    results go out in order), leased for :data:`LEASE`: the row with its URL and its key's
    hosts, or None. Found without the lock, then claimed only if no one did meanwhile."""
    now = time.time() if now is None else now
    for _ in range(3):  # another worker took the one found: look again
        found = rows(catalogue.conn, DUE, (now, now))
        if not found:
            return None
        with catalogue.write() as conn:
            taken = conn.execute(
                "UPDATE relay_queue SET claimed_until = ? WHERE id = ? AND state = 'pending'"
                " AND attempts = ? AND coalesce(claimed_until, 0) < ?",
                (now + LEASE, found[0]["id"], found[0]["attempts"], now))
        if taken.rowcount == 1:
            return found[0]
    return None


def send(method, url, body, content_type, policy):
    """``method`` (POST, PUT) ``body`` (bytes) to ``url`` under ``policy``: the status.

    :raises safe_fetch.Refused: the URL or its address breaks a rule.
    :raises safe_fetch.TransientError: no connection or no answer in time.
    """
    target = policy.check(url)
    infos = policy.resolve(target)
    deadline, errors = time.monotonic() + policy.total_timeout, []
    for info in infos:
        conn = safe_fetch._PinnedConnection(target, info, policy)  # the checked address
        try:
            conn.connect()
            conn.guard = safe_fetch._Deadline(conn.sock, deadline)
            conn.request(method, target.request_path, body=body, headers={
                "Content-Type": content_type, "User-Agent": "runware-archive"})
            response = conn.getresponse()
            response.read(64 * 1024)  # the answer is not used; a little is read politely
            return response.status
        except (OSError, http.client.HTTPException) as exc:
            errors.append(f"{info[4][0]}: {type(exc).__name__}: {exc}")
        finally:
            conn.close()
    raise safe_fetch.TransientError("could not deliver: " + "; ".join(errors))


class Waiting(Exception):
    """The image to upload is not archived yet: no attempt is made, nor counted."""


def _payload(catalogue, row, store):
    """``(method, URL, body, Content-Type)`` of a claimed row; an upload's body is the
    archived image, read from the store (the provider's URL may have expired by then).

    :raises Waiting: the image is still to be archived.
    :raises safe_fetch.PermanentError: it never will be.
    :raises safe_fetch.Refused: the key was revoked (its owner no longer sends here).
    """
    if row["revoked_at"]:
        raise safe_fetch.Refused("the client key was revoked")
    if not row["item_key"].startswith("u:"):
        return "POST", row["webhook_url"], row["body"].encode(), "application/json"
    found = rows(catalogue.conn, "SELECT archive_state, sha256, file_ext FROM results"
                 " WHERE task_uuid = ? AND image_uuid = ?",
                 (row["task_uuid"], row["item_key"][2:]))
    image = found[0] if found else {"archive_state": "gone"}
    if image["archive_state"] == "pending":
        raise Waiting()
    if image["archive_state"] != "archived" or store is None:
        raise safe_fetch.PermanentError(f"the image is {image['archive_state']}, not "
                                        "archived: nothing to upload")
    with store.open(image["sha256"], image["file_ext"]) as f:
        data = f.read()
    kind = mimetypes.guess_type(f"image.{image['file_ext']}")[0]
    return "PUT", row["upload_url"], data, kind or "application/octet-stream"


def attempt(catalogue, row, *, max_attempts, backoff, store=None):
    """Send one claimed row and record the attempt: ``delivered``, ``pending`` (to be
    retried), ``dead``, or ``waiting`` (an upload whose image is not archived yet)."""
    status, error = None, None
    try:
        method, url, body, kind = _payload(catalogue, row, store)
        status = send(method, url, body, kind, policy_for(hosts_of(row)))
    except Waiting:
        _defer(catalogue, row, time.time() + WAIT_FOR_IMAGE)
        return "waiting"
    except (safe_fetch.Refused, safe_fetch.PermanentError, OSError) as exc:
        error, max_attempts = _reworded(exc), 0  # retrying will not help
        error = f"refused: {error}" if isinstance(exc, safe_fetch.Refused) else error
    except safe_fetch.TransientError as exc:
        error = str(exc)
    ok = status is not None and 200 <= status < 300
    tries = row["attempts"] + 1
    state = "delivered" if ok else "dead" if tries >= max_attempts else "pending"
    error = error or (None if ok else f"HTTP {status}")
    _record(catalogue, row, state, tries, status, error, time.time() + (
        records.backoff(tries, backoff, MAX_WAIT) if state == "pending" else 0))
    return state


def _defer(catalogue, row, next_at):
    with catalogue.write() as conn:
        conn.execute("UPDATE relay_queue SET next_attempt_at = ?, claimed_until = NULL"
                     " WHERE id = ?", (next_at, row["id"]))


def _record(catalogue, row, state, tries, status, error, next_at):
    upload = row["item_key"].startswith("u:")
    url = row["upload_url"] if upload else row["webhook_url"]
    said = f"{'upload' if upload else 'relay'} to {url[:300]}: " + (error or f"HTTP {status}")
    if state == "dead":
        said += f" (gave up after {tries} attempt{'s' if tries > 1 else ''})"
    with catalogue.write() as conn:
        conn.execute(
            "UPDATE relay_queue SET state = ?, attempts = ?, next_attempt_at = ?,"
            " claimed_until = NULL, last_error = ?, delivered_at = ? WHERE id = ?",
            (state, tries, next_at, error, utcnow() if state == "delivered" else None,
             row["id"]))
        conn.execute(
            "INSERT INTO deliveries (received_at, source, task_uuid, verdict, reason,"
            " status_code, body, body_size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (utcnow(), SOURCE, row["task_uuid"], "relayed" if state == "delivered"
             else "relay-failed", said, status or 0, row["body"], len(row["body"])))


def relay_pass(catalogue, body_for, *, max_attempts, backoff, store=None):
    """Queue what arrived, then send what is due until nothing is or
    :data:`PASS_SECONDS` are over; returns ``{state: count}`` of the attempts made."""
    sweep(catalogue, body_for)
    ends, made = time.monotonic() + PASS_SECONDS, {}
    while time.monotonic() < ends:
        row = claim(catalogue)
        if row is None:
            break
        state = attempt(catalogue, row, max_attempts=max_attempts, backoff=backoff,
                        store=store)
        made[state] = made.get(state, 0) + 1
    return made


def queue(conn, task_uuid):
    """The relay rows of one task, in order (for the views and tests)."""
    return rows(conn, "SELECT id, item_key, state, attempts, last_error, delivered_at"
                      " FROM relay_queue WHERE task_uuid = ? ORDER BY id", (task_uuid,))
