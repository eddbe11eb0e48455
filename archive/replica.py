"""How far the catalogue's replica is behind (no Flask): read from Litestream's files.

Litestream (0.5) turns each batch of committed transactions into an LTX file: first in the
database's meta folder (``.<db>-litestream/ltx/0/<minTXID>-<maxTXID>.ltx``, written once a
second), then uploaded to the replica (``<path>/<level:04x>/<minTXID>-<maxTXID>.ltx``) and
compacted there into higher levels. So the replica holds every transaction up to the
highest ``maxTXID`` of any level, and what is not there yet is the local level-0 files past
it: the replica's lag is the age of the oldest of those. A transaction committed in the
last second, not yet in any LTX file, is not counted (at most Litestream's one-second
monitor interval more).
"""

import os
import re
import sqlite3
import time

LTX = re.compile(r"(?:^|/)([0-9a-f]{4})/([0-9a-f]{16})-([0-9a-f]{16})\.ltx$")
LOCAL_LTX = re.compile(r"^([0-9a-f]{16})-([0-9a-f]{16})\.ltx$")


def meta_folder(db_path):
    """Litestream's folder beside the database: ``.<name>-litestream``."""
    folder, name = os.path.split(os.path.abspath(db_path))
    return os.path.join(folder, f".{name}-litestream")


def replica_txid(client, bucket, path):
    """The highest transaction ID the replica at ``bucket``/``path`` holds (0: none)."""
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=path.rstrip("/") + "/")
    best = 0
    for page in pages:
        for item in page.get("Contents", ()):
            match = LTX.search(item["Key"])
            if match:
                best = max(best, int(match[3], 16))
    return best


def local_backlog(db_path, replicated):
    """``(local TXID, seconds since the oldest local LTX file past ``replicated`` was
    written)``; the age is 0.0 when the replica has everything."""
    folder = os.path.join(meta_folder(db_path), "ltx", "0")
    newest, oldest_waiting = 0, None
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        entries = []
    for entry in entries:
        match = LOCAL_LTX.match(entry.name)
        if not match:
            continue
        txid = int(match[2], 16)
        newest = max(newest, txid)
        if txid > replicated:
            try:
                mtime = entry.stat().st_mtime
            except FileNotFoundError:
                continue  # removed meanwhile: it was uploaded and compacted
            oldest_waiting = mtime if oldest_waiting is None else min(oldest_waiting, mtime)
    age = 0.0 if oldest_waiting is None else max(0.0, time.time() - oldest_waiting)
    return max(newest, replicated), age


def lag(db_path, client, bucket, path):
    """``{"localTxid", "replicaTxid", "lagSeconds"}`` of the database at ``db_path``."""
    replicated = replica_txid(client, bucket, path)
    local, age = local_backlog(db_path, replicated)
    return {"localTxid": local, "replicaTxid": replicated, "lagSeconds": round(age, 3)}


def integrity(db_path):
    """``PRAGMA integrity_check`` of the database at ``db_path``: ``"ok"`` or the problems."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return "; ".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()
