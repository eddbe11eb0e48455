"""Cost over time ranges and local days (no Flask), from rollups that triggers keep
(migration m008): ``cost_days`` per UTC day and key (model, size, label, provider),
``cost_timeline`` per 15-minute UTC bucket, ``cost_rollup`` per bucket and key.

A range ``[a, b)`` is read as the UTC days between the midnights nearest ``a`` and ``b``,
corrected at each end by the buckets between that midnight and the end: added when the
midnight comes first, taken away when it comes after. Any range, in any time zone, is then
whole days plus at most twelve hours of buckets at each end, where the buckets alone are 96
rows a day (a 30-day chart: about 150 rows instead of 2,900 at a million results a year).
It stays exact: every UTC offset in use is a multiple of 15 minutes, so no bucket
straddles an end of a local day.
"""

import bisect
import json
from datetime import datetime, time, timedelta

DAY = 86400
SUMS = "total(cost), sum(results), total(missing), total(missing_estimate)"
ZERO = (0.0, 0, 0, 0.0)


def nearest_midnight(moment):
    """``(midnight, sign, first, stop)``: the UTC midnight nearest epoch second ``moment``
    and the buckets ``[first, stop)`` between the two, to add (sign 1: the midnight comes
    first) or take away (sign -1)."""
    midnight = moment - moment % DAY
    if moment - midnight <= DAY // 2:
        return midnight, 1, midnight, moment
    return midnight + DAY, -1, moment, midnight + DAY


def _edges(conn, ends):
    """The sums of each end's buckets, in one read of ``cost_timeline``."""
    spans = [[end[2], end[3]] if end else [0, 0] for end in ends]
    found = {key: sums for key, *sums in conn.execute(
        f"SELECT CAST(d.key AS INTEGER), {SUMS} FROM json_each(?) d JOIN cost_timeline"
        " ON bucket >= json_extract(d.value, '$[0]') AND bucket < json_extract(d.value, '$[1]')"
        " GROUP BY d.key", (json.dumps(spans),))}
    return [found.get(i, ZERO) for i in range(len(ends))]


def _where(first, stop, column="bucket"):
    """`` WHERE first <= column < stop`` and its arguments; either end None: open."""
    clauses, args = [], []
    for op, value in ((">=", first), ("<", stop)):
        if value is not None:
            clauses.append(f"{column} {op} ?")
            args.append(value)
    return (f" WHERE {' AND '.join(clauses)}" if clauses else ""), args


def _days(conn, first, stop):
    """``(midnights, rows)`` of ``cost_days`` from midnight ``first`` to ``stop`` (None:
    open), summed per day, in order."""
    where, args = _where(first, stop, "day")
    rows = conn.execute(f"SELECT day, {SUMS} FROM cost_days{where} GROUP BY day ORDER BY day",
                        args).fetchall()
    return [row[0] for row in rows], [row[1:] for row in rows]


def _add(acc, sums, sign=1):
    """Add ``sign`` × ``sums`` to the list ``acc``, in place."""
    for i, value in enumerate(sums):
        acc[i] += sign * (value or 0)


def span_sums(conn, bounds):
    """``[(cost, results, missing, missing_estimate)]`` of each span between consecutive
    ``bounds``: ascending epoch seconds, the first None for the beginning of time and the
    last None for its end, if wanted."""
    ends = [None if moment is None else nearest_midnight(moment) for moment in bounds]
    edges = _edges(conn, ends)
    midnights, days = _days(conn, ends[0][0] if ends[0] else None,
                            ends[-1][0] if ends[-1] else None)
    out = []
    for i in range(len(bounds) - 1):
        a, b = ends[i], ends[i + 1]
        low = 0 if a is None else bisect.bisect_left(midnights, a[0])
        high = len(days) if b is None else bisect.bisect_left(midnights, b[0])
        acc = list(ZERO)
        for row in days[low:high]:
            _add(acc, row)
        if b is not None:
            _add(acc, edges[i + 1], b[1])
        if a is not None:
            _add(acc, edges[i], -a[1])
        out.append(tuple(acc))
    return out


def span_breakdown(conn, start, end, keys):
    """``[(*keys, cost, results, missing, missing_estimate)]`` over ``[start, end)`` (epoch
    seconds, either None for open), grouped by ``keys`` (columns of ``cost_rollup``): the
    whole days from ``cost_days``, the two edges from the buckets of ``cost_rollup``."""
    low, high = (None if m is None else nearest_midnight(m) for m in (start, end))
    names = ", ".join(keys)
    where, args = _where(*(None if e is None else e[0] for e in (low, high)), "day")
    parts = [f"SELECT {names}, cost, results, missing, missing_estimate FROM cost_days{where}"]
    for edge, side in ((high, 1), (low, -1)):
        if edge is not None:
            sign = edge[1] * side
            parts.append(f"SELECT {names}, {sign} * cost, {sign} * results, {sign} * missing,"
                         f" {sign} * missing_estimate FROM cost_rollup"
                         " WHERE bucket >= ? AND bucket < ?")
            args += edge[2:]
    return conn.execute(f"SELECT {names}, {SUMS} FROM ({' UNION ALL '.join(parts)})"
                        f" GROUP BY {names}", args).fetchall()


def local_midnight(day, tz):
    """The UTC epoch second at which local ``day`` begins in ``tz``."""
    return int(datetime.combine(day, time(), tz).timestamp())


def _local_dates(conn, tz, start, end):
    """``(dates, bounds)``: the local dates from the first to the last result in ``[start,
    end)`` and the epoch seconds between them (one more), within ``[start, end)``."""
    where, args = _where(start, end)
    # Two subqueries: each of min() and max() alone is one step along the key.
    low, high = conn.execute(f"SELECT (SELECT min(bucket) FROM cost_timeline{where}),"
                             f" (SELECT max(bucket) FROM cost_timeline{where})",
                             args * 2).fetchone()
    if low is None:
        return [], []
    day, last = datetime.fromtimestamp(low, tz).date(), datetime.fromtimestamp(high, tz).date()
    dates, bounds = [], [local_midnight(day, tz)]
    while day <= last:
        dates.append(day)
        day += timedelta(days=1)
        bounds.append(local_midnight(day, tz))
    bounds[0] = max(bounds[0], start if start is not None else bounds[0])
    bounds[-1] = min(bounds[-1], end if end is not None else bounds[-1])
    return dates, bounds


def local_days(conn, tz, start=None, end=None):
    """``[(date, cost, results, missing, missing_estimate)]`` per local date in ``tz``
    with results in ``[start, end)``."""
    dates, bounds = _local_dates(conn, tz, start, end)
    if not dates:
        return []
    return [(day, *sums) for day, sums in zip(dates, span_sums(conn, bounds)) if sums[1]]
