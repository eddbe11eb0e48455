"""The baselines for bench/webhook_ingest.py, served by the same gunicorn settings as the
service:

- ``create_app``: a bare Flask endpoint that reads the body and answers 200;
- ``create_insert_app``: the same endpoint plus one durable SQLite insert per request (the
  body into a one-table database), committed through the service's own group commit
  (:class:`archive.committer.GroupCommitter`, ``synchronous=FULL`` durability). This is
  the least any receiver that stores what it acknowledges can do on this stack, so it
  bounds what the real ingest (a result row, the task's status, the delivery log and the
  cost summaries, in one transaction) can reach.
"""

import os
import sqlite3

from flask import Flask, request

from archive.committer import GroupCommitter
from receiver.concurrency import off_loop


def create_app():
    app = Flask(__name__)

    @app.post("/webhooks/runware/<task_uuid>")
    def hook(task_uuid):
        request.get_data()
        return {"ok": True}

    return app


def create_insert_app():
    path = os.path.join(os.environ["RUNWARE_ARCHIVE_DIR"], "one-insert.db")
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE IF NOT EXISTS deliveries"
                   " (id INTEGER PRIMARY KEY, task_uuid TEXT, body BLOB)")

    def connect():
        return sqlite3.connect(path, isolation_level=None, check_same_thread=False)

    group = GroupCommitter(connect, wal_path=path + "-wal", durable=True, off_loop=off_loop)
    app = Flask(__name__)

    @app.post("/webhooks/runware/<task_uuid>")
    def hook(task_uuid):
        body = request.get_data()
        group.run(lambda conn: conn.execute(
            "INSERT INTO deliveries (task_uuid, body) VALUES (?, ?)", (task_uuid, body)))
        return {"ok": True}

    return app
