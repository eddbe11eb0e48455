"""The delivery log's queries (no Flask): every webhook, sync reply and polled answer the
service received, filtered by verdict, reason and task, keyset-paged by id; refusals
counted per hour, reason and source with a capped sample of their bodies; and the
retention that keeps the log bounded."""

VERDICTS = ("accepted", "failed", "progress", "duplicate", "rejected")
# A rejection's *kind* is its reason up to the first colon ("malformed JSON: …").
REASON_KIND = ("CASE WHEN instr(reason, ':') THEN substr(reason, 1, instr(reason, ':') - 1)"
               " ELSE reason END")


def deliveries(conn, *, verdict=None, reason=None, task_uuid=None, before=None,
               limit=100, with_body=False):
    """``(rows, next id)``: the delivery log newest first, keyset-paged by id.

    :param reason: a reason kind (see :func:`reason_kinds`), matched as a prefix.
    :param with_body: also read each logged body (up to 64 KiB each; lists need none).
    """
    clauses, args = [], []
    if verdict:
        clauses.append("verdict = ?")
        args.append(verdict)
    if reason:
        escaped = reason.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        clauses.append("reason LIKE ? ESCAPE '\\'")
        args.append(escaped + "%")
    if task_uuid:
        clauses.append("task_uuid = ?")
        args.append(task_uuid)
    if before:
        clauses.append("id < ?")
        args.append(before)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    cur = conn.execute(
        "SELECT id, received_at, source, task_uuid, verdict, reason, status_code,"
        " results_new, results_duplicate, errors, body_size, remote_addr, content_type"
        f"{', body' if with_body else ''} FROM deliveries{where} ORDER BY id DESC LIMIT ?", [*args, limit + 1])
    names = [d[0] for d in cur.description]
    rows = [dict(zip(names, row)) for row in cur.fetchall()]
    nxt = rows[limit - 1]["id"] if len(rows) > limit else None
    return rows[:limit], nxt


def reason_kinds(conn, since_hour="", limit=30):
    """``[(kind, count)]`` of the refusals counted since ``since_hour`` (``YYYY-MM-DDTHH``;
    all those kept by default), most frequent first: read from the counts, whose rows per
    hour are bounded however many refusals came, through their primary key's hour."""
    return conn.execute(
        "SELECT reason, sum(count) FROM refusals WHERE hour >= ? GROUP BY reason"
        " ORDER BY sum(count) DESC, reason LIMIT ?", (since_hour, limit)).fetchall()


def delivery(conn, delivery_id):
    """One row of the delivery log with its body, or None."""
    cur = conn.execute("SELECT * FROM deliveries WHERE id = ?", (delivery_id,))
    row = cur.fetchone()
    return dict(zip([d[0] for d in cur.description], row)) if row else None


# -- refusals: counted always, kept as a capped sample ---------------------------------------

SAMPLES_PER_SOURCE = 10  # refused bodies kept per hour, reason kind and source address
SAMPLES_PER_HOUR = 200  # and per hour in all
SOURCES_PER_HOUR = 1000  # distinct (reason, address) counts per hour; more share one row
MORE_SOURCES = "(more sources)"


def reason_kind(reason):
    """A refusal's kind: its reason up to the first colon (as :data:`REASON_KIND`)."""
    return (reason or "").split(":", 1)[0]


def count_refusal(conn, hour, reason, remote_addr):
    """Count one refusal in ``refusals``; returns ``(count for its source, the hour's
    total)`` after it. Inside the caller's write transaction."""
    key = (hour, reason_kind(reason), remote_addr or "")
    found = conn.execute("UPDATE refusals SET count = count + 1 WHERE hour = ? AND reason = ?"
                         " AND remote_addr = ? RETURNING count", key).fetchone()
    if found is None:
        rows = conn.execute("SELECT count(*) FROM refusals WHERE hour = ?", (hour,)).fetchone()
        if rows[0] >= SOURCES_PER_HOUR:  # bounded however many addresses send them
            key = (hour, key[1], MORE_SOURCES)
        found = conn.execute("INSERT INTO refusals VALUES (?, ?, ?, 1) ON CONFLICT DO UPDATE"
                             " SET count = count + 1 RETURNING count", key).fetchone()
    total = conn.execute("SELECT total(count) FROM refusals WHERE hour = ?",
                         (hour,)).fetchone()[0]
    return found[0], total


def keep_sample(source_count, hour_total):
    """Whether this refusal's body goes into the delivery log too."""
    return source_count <= SAMPLES_PER_SOURCE and hour_total <= SAMPLES_PER_HOUR


def count_unsampled(conn):
    """A refusal counted but not logged still counts in ``delivery_counts``."""
    conn.execute("INSERT INTO delivery_counts VALUES ('rejected', 1)"
                 " ON CONFLICT (verdict) DO UPDATE SET count = count + 1")


def refusal_summary(conn, since_hour, limit=50):
    """``[(reason kind, sources, refusals)]`` since ``since_hour`` (``YYYY-MM-DDTHH``),
    most refusals first."""
    return conn.execute(
        "SELECT reason, count(DISTINCT remote_addr), sum(count) FROM refusals"
        " WHERE hour >= ? GROUP BY reason ORDER BY sum(count) DESC, reason LIMIT ?",
        (since_hour, limit)).fetchall()


def counts_by_verdict(conn):
    """``{verdict: deliveries ever received}``, pruned ones included."""
    return dict(conn.execute("SELECT verdict, count FROM delivery_counts"))


# -- retention ---------------------------------------------------------------------------------

PRUNE_BATCH = 5000


def first_id_from(conn, moment):
    """The id of the first delivery received at or after ``moment`` (ids grow with time),
    found by bisection on the primary key, so no index on received_at is kept for it."""
    low, high = conn.execute("SELECT min(id), max(id) FROM deliveries").fetchone()
    if low is None:
        return None
    high += 1
    while low < high:
        middle = (low + high) // 2
        row = conn.execute("SELECT id, received_at FROM deliveries WHERE id >= ?"
                           " ORDER BY id LIMIT 1", (middle,)).fetchone()
        if row is None or row[1] >= moment:
            high = middle
        else:
            low = row[0] + 1
    return low


PRUNABLE = ("id < ? AND (verdict NOT IN ('accepted', 'failed') OR NOT EXISTS"
            " (SELECT 1 FROM tasks WHERE tasks.task_uuid = deliveries.task_uuid))")


def prune_batch(conn, before_id, before_hour):
    """Delete up to :data:`PRUNE_BATCH` deliveries older than ``before_id`` that may go:
    refusals, duplicates and progress; accepted ones only when their task is gone. Also
    the refusal counts older than ``before_hour``. Returns how many deliveries went."""
    gone = conn.execute(f"DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
                        f" WHERE {PRUNABLE} LIMIT ?)", (before_id, PRUNE_BATCH)).rowcount
    conn.execute("DELETE FROM refusals WHERE hour < ?", (before_hour,))
    return gone
