"""Cost aggregation over the catalogue (no Flask): the ``cost`` Runware returned is the truth."""


def summary(conn):
    """Total, by day (UTC) and by model, over every result with a cost; results without
    one are counted apart so a missing cost never passes silently as zero."""
    total, counted, missing = conn.execute(
        "SELECT coalesce(sum(cost), 0), count(cost), sum(cost IS NULL) FROM results"
    ).fetchone()
    by_day = conn.execute(
        "SELECT substr(received_at, 1, 10) AS day, sum(cost), count(*) FROM results"
        " GROUP BY day ORDER BY day"
    ).fetchall()
    by_model = conn.execute(
        "SELECT t.model, sum(r.cost), count(*) FROM results r"
        " JOIN tasks t ON t.task_uuid = r.task_uuid GROUP BY t.model ORDER BY t.model"
    ).fetchall()
    return {
        "total": round(total, 10), "currency": "USD", "results": counted,
        "resultsWithoutCost": missing or 0,
        "byDay": [{"day": d, "cost": round(c or 0, 10), "results": n} for d, c, n in by_day],
        "byModel": [{"model": m, "cost": round(c or 0, 10), "results": n}
                    for m, c, n in by_model],
    }
