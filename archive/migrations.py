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


# The cost rollup: results summed per 15-minute UTC bucket × model × size × label × provider.
# Every UTC offset in use today is a multiple of 15 minutes, so a local day, week or month in
# any time zone is a whole number of buckets and is folded from this small table instead of
# the result rows (issue 6). Triggers keep it exact inside the writing transaction, whatever
# path writes results. The bucket is read from the text truncated to whole seconds: SQLite's
# julian-day arithmetic rounds 23:59:59.9999995 up into the next day.


def _bucket(received_at):
    return f"CAST(strftime('%s', substr({received_at}, 1, 19)) AS INTEGER) / 900 * 900"


def _key(task):
    return (f"{task}.model, coalesce({task}.width || 'x' || {task}.height, ''),"
            f" coalesce({task}.label, ''), {task}.provider")


def _share(task):  # the estimate of one image of the task, for results without a cost
    return f"coalesce({task}.estimate / {task}.number_results, 0)"


def _upsert(select):
    return (
        "INSERT INTO cost_rollup (bucket, model, size, label, provider, cost, results,"
        f" missing, missing_estimate) {select}"
        " ON CONFLICT (bucket, model, size, label, provider) DO UPDATE SET"
        " cost = cost + excluded.cost, results = results + excluded.results,"
        " missing = missing + excluded.missing,"
        " missing_estimate = missing_estimate + excluded.missing_estimate;"
    )


def _add_result(row, sign=""):
    """Add (or with sign "-" take away) one result row, ``new`` or ``old``."""
    return _upsert(
        f"SELECT {_bucket(row + '.received_at')}, {_key('t')}, {sign}coalesce({row}.cost, 0),"
        f" {sign}1, {sign}({row}.cost IS NULL),"
        f" {sign}(CASE WHEN {row}.cost IS NULL THEN {_share('t')} ELSE 0 END)"
        f" FROM tasks t WHERE t.task_uuid = {row}.task_uuid"
    )


def _add_task(task, sign=""):
    """Add (or take away) every result of a task under its ``new`` or ``old`` row."""
    return _upsert(
        f"SELECT {_bucket('r.received_at')}, {_key(task)}, {sign}total(r.cost),"
        f" {sign}count(*), {sign}total(r.cost IS NULL),"
        f" {sign}total(CASE WHEN r.cost IS NULL THEN {_share(task)} ELSE 0 END)"
        f" FROM results r WHERE r.task_uuid = {task}.task_uuid GROUP BY 1"
    )


def m002_cost_ledger(db):
    """The cost rollup and its triggers, budget threshold crossings, cost indexes."""
    db.execute(
        "CREATE TABLE cost_rollup (bucket INTEGER NOT NULL, model TEXT NOT NULL,"
        " size TEXT NOT NULL, label TEXT NOT NULL, provider TEXT NOT NULL,"
        " cost REAL NOT NULL, results INTEGER NOT NULL, missing INTEGER NOT NULL,"
        " missing_estimate REAL NOT NULL,"
        " PRIMARY KEY (bucket, model, size, label, provider)) WITHOUT ROWID"
    )
    db.execute(_upsert(  # the results stored before this migration
        f"SELECT {_bucket('r.received_at')}, {_key('t')}, total(r.cost), count(*),"
        f" total(r.cost IS NULL), total(CASE WHEN r.cost IS NULL THEN {_share('t')} ELSE 0 END)"
        " FROM results r JOIN tasks t ON t.task_uuid = r.task_uuid WHERE 1"
        " GROUP BY 1, 2, 3, 4, 5"
    ))
    db.executescript(f"""
        CREATE TRIGGER results_cost_ai AFTER INSERT ON results BEGIN
          {_add_result("new")}
        END;
        CREATE TRIGGER results_cost_ad AFTER DELETE ON results BEGIN
          {_add_result("old", "-")}
        END;
        CREATE TRIGGER results_cost_au AFTER UPDATE OF cost, received_at, task_uuid
        ON results BEGIN
          {_add_result("old", "-")}
          {_add_result("new")}
        END;
        CREATE TRIGGER tasks_cost_au AFTER UPDATE OF model, width, height, label, provider,
          estimate, number_results ON tasks BEGIN
          {_add_task("old", "-")}
          {_add_task("new")}
        END;
    """)
    db.execute(
        "CREATE TABLE budget_crossings (period TEXT NOT NULL, period_key TEXT NOT NULL,"
        " threshold REAL NOT NULL, limit_usd REAL NOT NULL, crossed_at TEXT NOT NULL,"
        " committed REAL NOT NULL, alert_sent_at TEXT, alert_error TEXT,"
        " PRIMARY KEY (period, period_key, threshold, limit_usd))"
    )
    db.execute("CREATE INDEX results_received_at ON results (received_at)")
    db.execute("CREATE INDEX results_keepers ON results (task_uuid) WHERE starred = 1")
    db.execute("CREATE INDEX tasks_cost ON tasks (cost)")


def m003_image_archive(db):
    """Uploads (the provider's PUTs to uploadEndpoint), reconcile bookkeeping on tasks,
    and the index the fetcher's claim query walks (issue 4)."""
    db["uploads"].create(
        {
            "id": int, "task_uuid": str, "received_at": str, "sha256": str,
            "file_ext": str, "file_size": int, "img_width": int, "img_height": int,
            "image_uuid": str, "matched_by": str, "matched_at": str, "remote_addr": str,
        },
        pk="id",
        not_null=["task_uuid", "received_at", "sha256", "file_ext", "file_size"],
        foreign_keys=[("task_uuid", "tasks", "task_uuid")],
    )
    db["uploads"].create_index(["task_uuid", "sha256"], unique=True)
    db["uploads"].create_index(["sha256"])
    db.execute("CREATE INDEX uploads_unmatched ON uploads (received_at)"
               " WHERE matched_at IS NULL")
    db["tasks"].add_column("reconciled_at", str)
    db["tasks"].add_column("reconcile_count", int, not_null_default=0)
    db.execute("CREATE INDEX results_pending ON results (url_expires_at, received_at)"
               " WHERE archive_state = 'pending'")


def m004_browsing(db):
    """The gallery's indexes and each image's perceptual hash (issue 5).

    The gallery walks tasks newest first through an index per filter (``model``,
    ``provider``, ``width, height``; ``status`` and ``created_at`` exist), and counts what
    a filter selects from one narrow covering index instead of the wide task rows; see
    ``archive/history.py`` and ``bench/history.py``. ``results.dhash`` caches the 64-bit
    difference hash of ``archive/verdict.py`` (16 hex digits), computed on first use.
    """
    db["results"].add_column("dhash", str)
    db.execute("CREATE INDEX tasks_model ON tasks (model)")
    db.execute("CREATE INDEX tasks_provider ON tasks (provider)")
    db.execute("CREATE INDEX tasks_size ON tasks (width, height)")
    db.execute("CREATE INDEX tasks_gallery_totals ON tasks (provider, status, model, width,"
               " height, created_at, results_received, cost)")


def m005_task_errors(db):
    """Error items, deduplicated: they carry no imageUUID, so a repeated error webhook
    is known by the fingerprint of its content (issue 3's sandbox found the double count)."""
    db["task_errors"].create(
        {"task_uuid": str, "fingerprint": str, "code": str, "message": str,
         "received_at": str},
        pk=("task_uuid", "fingerprint"), not_null=["received_at"],
        foreign_keys=[("task_uuid", "tasks", "task_uuid")],
    )


def m006_cost_families(db):
    """``tasks.family_root`` for cost per lineage family, and an index for what is in flight.

    A re-run's family is its original (root) task and every re-run below it. The root is
    set when a re-run is inserted (on it, and on a parent that had none), so the costs of
    all families are one scan of a small covering index instead of a recursive walk of the
    whole lineage (``archive/costs.py``, ``bench/costs_scale.py``). The budget check sums
    the estimates of unfinished tasks from a partial index of them alone.
    """
    db["tasks"].add_column("family_root", str)
    db.execute(
        "CREATE TEMP TABLE _families AS WITH RECURSIVE family(task_uuid, root) AS ("
        " SELECT DISTINCT p.task_uuid, p.task_uuid FROM tasks c CROSS JOIN tasks p"
        " ON p.task_uuid = c.parent_task_uuid"
        " WHERE c.parent_task_uuid IS NOT NULL AND p.parent_task_uuid IS NULL"
        " UNION SELECT c.task_uuid, f.root FROM family f"
        " JOIN tasks c ON c.parent_task_uuid = f.task_uuid)"
        " SELECT task_uuid, root FROM family"
    )
    db.execute("UPDATE tasks SET family_root = f.root FROM _families f"
               " WHERE f.task_uuid = tasks.task_uuid")
    db.execute("DROP TABLE _families")
    db.executescript("""
        CREATE TRIGGER tasks_family_ai AFTER INSERT ON tasks
        WHEN new.parent_task_uuid IS NOT NULL BEGIN
          UPDATE tasks SET family_root = task_uuid
            WHERE task_uuid = new.parent_task_uuid AND family_root IS NULL;
          UPDATE tasks SET family_root = (SELECT family_root FROM tasks
            WHERE task_uuid = new.parent_task_uuid) WHERE id = new.id;
        END;
    """)
    db.execute("CREATE INDEX tasks_families ON tasks (family_root, cost, cost_missing,"
               " results_received) WHERE family_root IS NOT NULL")
    db.execute("CREATE INDEX tasks_in_flight ON tasks (status, estimate, cost)"
               " WHERE status NOT IN ('complete', 'error')")


def m007_lean_results_indexes(db):
    """One index fewer for every webhook to maintain: (archive_state, url_expires_at) was
    superseded by m003's partial ``results_pending``; what else asked by state (failed and
    refused images) gets a partial index that new results, all pending, never touch."""
    db.execute("DROP INDEX idx_results_archive_state_url_expires_at")
    db.execute("CREATE INDEX results_troubled ON results (archive_state)"
               " WHERE archive_state IN ('failed', 'refused')")


# The dashboard's summaries (issue 7, "catalogue at scale"): what it showed was folded from
# every cost_rollup row (300,000 a year at a million results) on each request. Coarser views
# of the rollup are kept beside it by triggers *on cost_rollup*, so they are exact functions
# of it whatever path wrote it (results, relabelled tasks), and a result insert pays three
# more small upserts and no second look-up of its task: per key (model, size, label,
# provider) for all time; per 15-minute bucket; per UTC day and key. A sum over any time
# range is then whole days plus two edges of at most twelve hours of buckets
# (archive/timeline.py), exact in every time zone as before.
SUMS = ("cost", "results", "missing", "missing_estimate")
DIMENSIONS = ("model", "size", "label", "provider")
DAY = 86400


def _add_sums(table, keys, values, columns=SUMS, where=None):
    """Upsert ``values`` (SQL expressions of ``columns``) at ``keys`` ({column: expression});
    ``where`` is ``(FROM clause, condition)`` for values that are aggregates of a table."""
    names, exprs = [*keys, *columns], ", ".join([*keys.values(), *values])
    source = f"SELECT {exprs} FROM {where[0]} WHERE {where[1]}" if where else \
        f"VALUES ({exprs})"
    return (f"INSERT INTO {table} ({', '.join(names)}) {source}"
            f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
            + ", ".join(f"{c} = {c} + excluded.{c}" for c in columns) + ";")


def _roll_into(row, sign="", minus=None):
    """The summaries' upserts of ``row`` (``new`` or ``old``) of cost_rollup (``sign`` "-"
    takes it away), or of the difference ``row - minus`` when only its sums changed."""
    values = [f"{sign}({row}.{s}" + (f" - {minus}.{s})" if minus else ")") for s in SUMS]
    dims = {d: f"{row}.{d}" for d in DIMENSIONS}
    return "\n".join((
        _add_sums("cost_totals", dims, values),
        _add_sums("cost_timeline", {"bucket": f"{row}.bucket"}, values),
        _add_sums("cost_days", {"day": f"{row}.bucket - {row}.bucket % {DAY}", **dims}, values)))


def m008_cost_summaries(db):
    """``cost_totals`` (per model, size, label and provider, all time), ``cost_timeline``
    (per 15-minute UTC bucket) and ``cost_days`` (per UTC day, keyed by its midnight, and
    model, size, label and provider), folded from ``cost_rollup`` and kept by its triggers.

    The rollup's upsert sets only its sums, so only ``cost_rollup_au`` runs for it (a
    trigger costs a few microseconds even when its WHEN is false).
    """
    sums = ", ".join(f"{s} {'INTEGER' if s in ('results', 'missing') else 'REAL'} NOT NULL"
                     for s in SUMS)
    dims = ", ".join(f"{d} TEXT NOT NULL" for d in DIMENSIONS)
    keys = ", ".join(DIMENSIONS)
    db.execute(f"CREATE TABLE cost_totals ({dims}, {sums}, PRIMARY KEY ({keys})) WITHOUT ROWID")
    db.execute(f"CREATE TABLE cost_timeline (bucket INTEGER PRIMARY KEY, {sums})")
    db.execute(f"CREATE TABLE cost_days (day INTEGER NOT NULL, {dims}, {sums},"
               f" PRIMARY KEY (day, {keys})) WITHOUT ROWID")
    totals = ", ".join(f"total({s})" for s in SUMS)
    for table, key in (("cost_totals", keys), ("cost_timeline", "bucket"),
                       ("cost_days", f"bucket - bucket % {DAY}, {keys}")):
        db.execute(f"INSERT INTO {table} SELECT {key}, {totals} FROM cost_rollup"
                   f" GROUP BY {key}")
    same_keys = " AND ".join(f"old.{k} IS new.{k}" for k in ("bucket", *DIMENSIONS))
    db.executescript(f"""
        CREATE TRIGGER cost_rollup_ai AFTER INSERT ON cost_rollup BEGIN
          {_roll_into("new")}
        END;
        CREATE TRIGGER cost_rollup_au AFTER UPDATE OF {", ".join(SUMS)} ON cost_rollup
        WHEN {same_keys} BEGIN
          {_roll_into("new", minus="old")}
        END;
        CREATE TRIGGER cost_rollup_au_keys AFTER UPDATE OF bucket, {keys} ON cost_rollup
        WHEN NOT ({same_keys}) BEGIN
          {_roll_into("old", "-")}
          {_roll_into("new")}
        END;
        CREATE TRIGGER cost_rollup_ad AFTER DELETE ON cost_rollup BEGIN
          {_roll_into("old", "-")}
        END;
    """)


FAMILY_SUMS = ("tasks", "cost", "missing", "results", "keepers")


def _result_into_family(row, sign="+"):
    """Add (or take away) one result row (``new`` or ``old``) in its task's family, if any."""
    return (f"UPDATE cost_families SET cost = cost {sign} coalesce({row}.cost, 0),"
            f" missing = missing {sign} ({row}.cost IS NULL), results = results {sign} 1,"
            f" keepers = keepers {sign} {row}.starred WHERE root ="
            f" (SELECT family_root FROM tasks WHERE task_uuid = {row}.task_uuid);")


def _task_into_family(row, sign=""):
    """Add (or take away) a task row (``new`` or ``old``) and its results in its family."""
    return _add_sums(
        "cost_families", {"root": f"{row}.family_root"},
        [f"{sign}{value}" for value in ("1", "total(r.cost)", "total(r.cost IS NULL)",
                                        "count(*)", "total(r.starred)")],
        FAMILY_SUMS, where=("results r", f"r.task_uuid = {row}.task_uuid"))


def m009_family_totals(db):
    """``cost_families``: each lineage family's tasks and its results' cost, results without
    a cost, results and keepers (starred), kept by triggers, so the dashboard's costliest
    families are ten rows of an index instead of a grouping of every re-run (m006's
    ``tasks_families``) and a count of keepers per family.

    A result insert (every delivery) pays one look-up of its task's ``family_root``; the
    task triggers run on insert, delete and re-parenting, never on a delivery's update of
    the task (a trigger there costs each delivery more than the look-up).
    """
    db.execute("CREATE TABLE cost_families (root TEXT PRIMARY KEY, tasks INTEGER NOT NULL,"
               " cost REAL NOT NULL, missing INTEGER NOT NULL, results INTEGER NOT NULL,"
               " keepers INTEGER NOT NULL) WITHOUT ROWID")
    db.execute("INSERT INTO cost_families SELECT t.family_root, count(DISTINCT t.id),"
               " total(r.cost), total(r.cost IS NULL), count(r.id), total(r.starred)"
               " FROM tasks t LEFT JOIN results r ON r.task_uuid = t.task_uuid"
               " WHERE t.family_root IS NOT NULL GROUP BY t.family_root")
    db.execute("CREATE INDEX cost_families_by_cost ON cost_families (cost DESC, root)")
    db.executescript(f"""
        CREATE TRIGGER results_families_ai AFTER INSERT ON results BEGIN
          {_result_into_family("new")}
        END;
        CREATE TRIGGER results_families_ad AFTER DELETE ON results BEGIN
          {_result_into_family("old", "-")}
        END;
        CREATE TRIGGER results_families_au AFTER UPDATE OF cost, starred, task_uuid
        ON results BEGIN
          {_result_into_family("old", "-")}
          {_result_into_family("new")}
        END;
        CREATE TRIGGER tasks_families_ai AFTER INSERT ON tasks
        WHEN new.family_root IS NOT NULL BEGIN
          {_task_into_family("new")}
        END;
        CREATE TRIGGER tasks_families_ad AFTER DELETE ON tasks
        WHEN old.family_root IS NOT NULL BEGIN
          {_task_into_family("old", "-")}
        END;
        CREATE TRIGGER tasks_families_left AFTER UPDATE OF family_root ON tasks
        WHEN old.family_root IS NOT NULL AND old.family_root IS NOT new.family_root BEGIN
          {_task_into_family("old", "-")}
        END;
        CREATE TRIGGER tasks_families_joined AFTER UPDATE OF family_root ON tasks
        WHEN new.family_root IS NOT NULL AND old.family_root IS NOT new.family_root BEGIN
          {_task_into_family("new")}
        END;
    """)


def m010_gallery_totals(db):
    """What the gallery's line "N images in M tasks · $X" reads, without a scan.

    Everything: the number of tasks from ``task_totals`` (a counter kept by insert and
    delete triggers on ``tasks``, which a delivery never fires), images and cost from
    m008's ``cost_totals``. Filtered views count at most ``history.SUMMARY_CAP`` tasks
    along the gallery's own walk, so m004's covering index ``tasks_gallery_totals`` is read
    by nothing; it was rewritten on every delivery (it holds ``results_received`` and
    ``cost``) and goes. Starred results are counted exactly from a partial index that now
    holds their cost too (a star is a click, never a delivery: new results are unstarred).
    """
    db.execute("CREATE TABLE task_totals (id INTEGER PRIMARY KEY CHECK (id = 1),"
               " tasks INTEGER NOT NULL)")
    db.execute("INSERT INTO task_totals VALUES (1, (SELECT count(*) FROM tasks))")
    db.executescript("""
        CREATE TRIGGER tasks_count_ai AFTER INSERT ON tasks BEGIN
          UPDATE task_totals SET tasks = tasks + 1 WHERE id = 1;
        END;
        CREATE TRIGGER tasks_count_ad AFTER DELETE ON tasks BEGIN
          UPDATE task_totals SET tasks = tasks - 1 WHERE id = 1;
        END;
    """)
    db.execute("DROP INDEX tasks_gallery_totals")
    db.execute("DROP INDEX results_keepers")
    db.execute("CREATE INDEX results_starred ON results (task_uuid, cost) WHERE starred = 1")


# Every length of prefix a search word can have up to this one gets its own FTS5 index.
PREFIX_LENGTHS = 12


def m011_search_prefixes(db):
    """Rebuild ``tasks_fts`` with prefix indexes of 1 to PREFIX_LENGTHS characters.

    A bare search word is a prefix query (``light*``), and without a prefix index FTS5
    merges the doclists of every term it begins (light, lighthouse, …) in memory before it
    returns the first row: 10 ms at a million results for one common word, and each word
    of a query pays it again. With the index, a prefix is read like a term, newest first,
    and stops at the page. The index is about six times as large and costs each task
    insert (never a delivery) more terms to write; m001's triggers keep it unchanged.
    """
    lengths = " ".join(str(n) for n in range(1, PREFIX_LENGTHS + 1))
    db.execute("DROP TABLE tasks_fts")
    # content="tasks" spelled as enable_fts() spells it, so sqlite-utils still finds it.
    db.execute('CREATE VIRTUAL TABLE tasks_fts USING FTS5 ("positive_prompt",'
               ' "negative_prompt", tokenize=\'unicode61\', content="tasks",'
               f" prefix='{lengths}')")
    db.execute("INSERT INTO tasks_fts (tasks_fts) VALUES ('rebuild')")


def m012_costliest_tasks(db):
    """m002's index on ``tasks.cost`` also holds ``created_at``, so the costliest tasks of a
    date range are found walking costs down and testing dates in the index alone
    (``archive.costs.top_tasks``). A delivery rewrote the entry already (its cost changes)."""
    db.execute("DROP INDEX tasks_cost")
    db.execute("CREATE INDEX tasks_cost ON tasks (cost, created_at)")


def m013_failures_and_lost_tasks(db):
    """What Runware's own SDKs taught us about deliveries.

    - ``task_errors.image_uuid``: a failed generation is an item of its own, often naming
      the image that failed; such errors are one per image, however often they arrive.
    - ``deliveries.content_type``: Runware does not document its webhook headers, so every
      body is parsed as JSON whatever it says, and what it said is kept here.
    - ``lost``: a task whose results never came and that Runware no longer knows once the
      reconcile window closes. It is finished, so its estimate leaves the in-flight sum.
    """
    db.execute("ALTER TABLE task_errors ADD COLUMN image_uuid TEXT")
    db.execute("ALTER TABLE deliveries ADD COLUMN content_type TEXT")
    db.execute("DROP INDEX tasks_in_flight")
    db.execute("CREATE INDEX tasks_in_flight ON tasks (status, estimate, cost)"
               " WHERE status NOT IN ('complete', 'error', 'lost')")


def m014_sessions_and_login_failures(db):
    """Login state every worker shares and a restart keeps (``archive.sessions``).

    - ``sessions``: one row per login, keyed by the SHA-256 of the cookie's random id
      (``WITHOUT ROWID``: a request's check is one primary-key lookup); logging out deletes
      it, and ``epoch`` ties it to the password it was made under.
    - ``login_failures``: one row per wrong password, by client address and time, pruned
      to the lockout window.
    """
    db.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, epoch TEXT NOT NULL,"
               " created_at REAL NOT NULL, last_seen REAL NOT NULL,"
               " expires_at REAL NOT NULL) WITHOUT ROWID")
    db.execute("CREATE INDEX sessions_expires ON sessions (expires_at)")
    db.execute("CREATE TABLE login_failures (id INTEGER PRIMARY KEY, address TEXT NOT NULL,"
               " failed_at REAL NOT NULL)")
    db.execute("CREATE INDEX login_failures_address ON login_failures (address, failed_at)")
    db.execute("CREATE INDEX login_failures_time ON login_failures (failed_at)")


def m015_bounded_refusals(db):
    """Refused deliveries are counted, not all kept: anyone can POST a forged token, and
    every refusal written in full grew the catalogue without bound (68,000 forged posts
    in 30 s added 13.5 MB) until real webhooks answered 503.

    - ``refusals``: one row per hour, reason kind and source address, with a count; the
      delivery log keeps a capped sample of the refused bodies (archive/delivery_log.py).
    - ``delivery_counts``: deliveries ever received by verdict, kept by a trigger, so
      ``/metrics`` reads a few rows instead of counting a million, and pruning the log
      (its retention) never makes a Prometheus counter go down.
    """
    db.execute("CREATE TABLE refusals (hour TEXT NOT NULL, reason TEXT NOT NULL,"
               " remote_addr TEXT NOT NULL, count INTEGER NOT NULL,"
               " PRIMARY KEY (hour, reason, remote_addr)) WITHOUT ROWID")
    db.execute("INSERT INTO refusals SELECT substr(received_at, 1, 13),"
               " CASE WHEN instr(reason, ':') THEN substr(reason, 1, instr(reason, ':') - 1)"
               " ELSE coalesce(reason, '') END, coalesce(remote_addr, ''), count(*)"
               " FROM deliveries WHERE verdict = 'rejected' GROUP BY 1, 2, 3")
    db.execute("CREATE TABLE delivery_counts (verdict TEXT PRIMARY KEY,"
               " count INTEGER NOT NULL) WITHOUT ROWID")
    db.execute("INSERT INTO delivery_counts SELECT verdict, count(*) FROM deliveries"
               " GROUP BY verdict")
    db.execute("CREATE TRIGGER deliveries_counted AFTER INSERT ON deliveries BEGIN"
               " INSERT INTO delivery_counts VALUES (new.verdict, 1)"
               " ON CONFLICT (verdict) DO UPDATE SET count = count + 1; END")


MIGRATIONS = [m001_core, m002_cost_ledger, m003_image_archive, m004_browsing,
              m005_task_errors, m006_cost_families, m007_lean_results_indexes,
              m008_cost_summaries, m009_family_totals, m010_gallery_totals,
              m011_search_prefixes, m012_costliest_tasks,
              m013_failures_and_lost_tasks, m014_sessions_and_login_failures,
              m015_bounded_refusals]


def current_version(db):
    """The highest applied migration, 0 for a new file."""
    if not db["_migrations"].exists():
        return 0
    row = db.conn.execute("SELECT max(version) FROM _migrations").fetchone()
    return row[0] or 0


# How long a process waits for another one's migration: rebuilding m011's search index
# takes about 10 s at a million results, longer than any busy timeout a webhook should use.
MIGRATION_WAIT_MS = 600_000


def apply(db, write):
    """Apply the pending migrations, each in its own transaction; returns the version.

    :param write: the catalogue's ``write`` context manager (``BEGIN IMMEDIATE``), so two
        processes starting at once serialise here and the loser sees the work done. While
        migrating, a lock is waited for up to :data:`MIGRATION_WAIT_MS`.
    """
    if current_version(db) >= len(MIGRATIONS):
        return current_version(db)  # up to date: start without taking the write lock
    busy = db.conn.execute("PRAGMA busy_timeout").fetchone()[0]
    db.conn.execute(f"PRAGMA busy_timeout = {MIGRATION_WAIT_MS}")
    try:
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
    finally:
        db.conn.execute(f"PRAGMA busy_timeout = {busy}")
    return current_version(db)
