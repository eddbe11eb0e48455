"""What every catalogue module shares: the time stamps, rows as dicts, the logged form of a
body, inline image data kept out of the log, the two ways a delivery can name the wrong
task, and the wait before a retry of ours (an image's download, a relayed result)."""

import random
import re
from datetime import datetime, timezone

BODY_CAP = 64 * 1024  # bytes of a delivery body kept in the log
INLINE_FIELDS = ("imageBase64Data", "imageDataURI")
# What a logged body holds where it kept less than arrived: see kept_of().
ELIDED = "<{} characters, archived separately>"
CUT = "\n… [{} more bytes not kept]"
_CUT_AT_END = re.compile(re.escape(CUT).replace(r"\{\}", r"\d+") + "$")


class UnknownTask(LookupError):
    """The task a delivery claims is not in the catalogue."""


class ForeignResult(ValueError):
    """A delivery holds a result of another task than the one it is for."""


def utcnow():
    """The current time as ISO 8601 UTC text with microseconds (sorts as text)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rows(conn, sql, args=()):
    """The rows of a query as dicts, column name to value: how rows leave SQL here."""
    cur = conn.execute(sql, args)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur]


def elide_inline(item):
    """A copy of a result item with inline image data replaced by its length.

    Megabytes of base64 belong in the image store, not in the log or the ``raw`` column.
    """
    if not any(key in item for key in INLINE_FIELDS):
        return item
    out = dict(item)
    for key in INLINE_FIELDS:
        if isinstance(out.get(key), str):
            out[key] = ELIDED.format(len(out[key]))
    return out


def cap_body(body):
    """The logged form of a body: text, inline image data elided, at most BODY_CAP bytes."""
    if body is None:
        return None, 0
    if isinstance(body, str):
        body = body.encode("utf-8", "replace")
    size = len(body)
    text = body[:BODY_CAP].decode("utf-8", "replace")
    if size > BODY_CAP:
        text += CUT.format(size - BODY_CAP)
    return text, size


def kept_of(body):
    """What the log kept of a body (its text): its size in bytes, whether inline image data
    was replaced by its length and whether it was cut at :data:`BODY_CAP`, so a page can
    say why it is smaller than what arrived (``body_size``)."""
    body = body or ""
    return {"size": len(body.encode("utf-8", "replace")),
            "elided": ELIDED.split("}", 1)[1] in body,
            "cut": _CUT_AT_END.search(body[-80:]) is not None}


def backoff(attempt, first, cap):
    """Seconds before attempt ``attempt + 1``: ``first`` doubling per attempt, at most
    ``cap``, within ±20 % (jitter, so what failed together is not retried in step)."""
    return min(first * 2 ** (attempt - 1), cap) * random.uniform(0.8, 1.2)
