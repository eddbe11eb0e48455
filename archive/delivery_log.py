"""The delivery log's queries (no Flask): every webhook, sync reply and polled answer the
service received, filtered by verdict, reason and task, keyset-paged by id."""

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


def reason_kinds(conn, limit=30):
    """``[(kind, count)]`` of the rejections, most frequent first."""
    return conn.execute(
        f"SELECT {REASON_KIND} AS kind, count(*) FROM deliveries WHERE verdict = 'rejected'"
        " GROUP BY kind ORDER BY count(*) DESC, kind LIMIT ?", (limit,)).fetchall()


def delivery(conn, delivery_id):
    """One row of the delivery log with its body, or None."""
    cur = conn.execute("SELECT * FROM deliveries WHERE id = ?", (delivery_id,))
    row = cur.fetchone()
    return dict(zip([d[0] for d in cur.description], row)) if row else None
