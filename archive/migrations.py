"""The catalogue's schema, as a list of migrations applied in order.

Each migration is a function of a :class:`sqlite_utils.Database` run inside one write
transaction; the version applied is recorded in ``_migrations``. Add new ones at the end;
never edit one that has shipped.
"""

from datetime import datetime, timezone


def m001_core(db):
    """Tasks, results, the delivery log and the prompt search index."""
    db["tasks"].create(
        {
            "id": int, "task_uuid": str, "created_at": str, "updated_at": str,
            "model": str, "positive_prompt": str, "negative_prompt": str,
            "width": int, "height": int, "steps": int, "cfg_scale": float,
            "scheduler": str, "seed": int, "number_results": int,
            "output_type": str, "output_format": str, "delivery_method": str, "ttl": int,
            "params": str, "provider": str, "status": str, "parent_task_uuid": str,
            "rerun_mode": str, "error_code": str, "error_message": str,
            "submitted_at": str, "acknowledged_at": str, "completed_at": str, "ack": str,
            "results_received": int, "errors_received": int, "cost": float,
            "cost_missing": int, "estimate": float, "label": str,
        },
        pk="id",
        not_null=["task_uuid", "created_at", "updated_at", "model", "positive_prompt",
                  "params", "provider", "status", "number_results",
                  "results_received", "errors_received", "cost_missing"],
        defaults={"results_received": 0, "errors_received": 0, "cost_missing": 0},
        foreign_keys=[("parent_task_uuid", "tasks", "task_uuid")],
    )
    db["tasks"].create_index(["task_uuid"], unique=True)
    db["tasks"].create_index(["parent_task_uuid"])
    db["tasks"].create_index(["status"])
    db["tasks"].create_index(["created_at"])
    db["results"].create(
        {
            "id": int, "image_uuid": str, "task_uuid": str, "received_at": str,
            "seed": int, "cost": float, "nsfw": int, "image_url": str,
            "output_kind": str, "url_expires_at": str, "archive_state": str,
            "archive_error": str, "archive_attempts": int, "claimed_by": str,
            "claimed_until": str, "next_attempt_at": str, "archived_at": str,
            "sha256": str, "file_ext": str, "file_size": int, "img_width": int,
            "img_height": int, "starred": int, "raw": str,
        },
        pk="id",
        not_null=["image_uuid", "task_uuid", "received_at", "output_kind",
                  "archive_state", "archive_attempts", "starred"],
        defaults={"archive_attempts": 0, "starred": 0},
        foreign_keys=[("task_uuid", "tasks", "task_uuid")],
    )
    db["results"].create_index(["image_uuid"], unique=True)
    db["results"].create_index(["task_uuid"])
    db["results"].create_index(["archive_state", "url_expires_at"])
    db["results"].create_index(["sha256"])
    db["deliveries"].create(
        {
            "id": int, "received_at": str, "source": str, "task_uuid": str,
            "verdict": str, "reason": str, "status_code": int, "results_new": int,
            "results_duplicate": int, "errors": int, "body": str, "body_size": int,
            "remote_addr": str,
        },
        pk="id",
        not_null=["received_at", "source", "verdict", "status_code"],
    )
    db["deliveries"].create_index(["task_uuid"])
    db["deliveries"].create_index(["verdict"])
    db["tasks"].enable_fts(["positive_prompt", "negative_prompt"], tokenize="unicode61")
    # Our own triggers, not enable_fts(create_triggers=True): that one re-indexes the
    # prompts on *every* UPDATE, and every delivery updates its task's status.
    db.executescript(
        """
        CREATE TRIGGER tasks_fts_ai AFTER INSERT ON tasks BEGIN
          INSERT INTO tasks_fts (rowid, positive_prompt, negative_prompt)
          VALUES (new.id, new.positive_prompt, new.negative_prompt);
        END;
        CREATE TRIGGER tasks_fts_ad AFTER DELETE ON tasks BEGIN
          INSERT INTO tasks_fts (tasks_fts, rowid, positive_prompt, negative_prompt)
          VALUES ('delete', old.id, old.positive_prompt, old.negative_prompt);
        END;
        CREATE TRIGGER tasks_fts_au AFTER UPDATE OF positive_prompt, negative_prompt
        ON tasks BEGIN
          INSERT INTO tasks_fts (tasks_fts, rowid, positive_prompt, negative_prompt)
          VALUES ('delete', old.id, old.positive_prompt, old.negative_prompt);
          INSERT INTO tasks_fts (rowid, positive_prompt, negative_prompt)
          VALUES (new.id, new.positive_prompt, new.negative_prompt);
        END;
        """
    )


MIGRATIONS = [m001_core]


def current_version(db):
    """The highest applied migration, 0 for a new file."""
    if not db["_migrations"].exists():
        return 0
    row = db.conn.execute("SELECT max(version) FROM _migrations").fetchone()
    return row[0] or 0


def apply(db, write):
    """Apply the pending migrations, each in its own transaction; returns the version.

    :param write: the catalogue's ``write`` context manager (``BEGIN IMMEDIATE``), so two
        processes starting at once serialise here and the loser sees the work done.
    """
    with write():
        db["_migrations"].create(
            {"version": int, "name": str, "applied_at": str}, pk="version",
            if_not_exists=True,
        )
    for version, migration in enumerate(MIGRATIONS, start=1):
        with write():
            if current_version(db) >= version:
                continue
            migration(db)
            db["_migrations"].insert({
                "version": version, "name": migration.__name__,
                "applied_at": datetime.now(timezone.utc).isoformat(),
            })
    return current_version(db)
