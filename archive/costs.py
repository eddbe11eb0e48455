"""Cost aggregation over the catalogue (no Flask): the ``cost`` Runware returned is the truth.

Totals and breakdowns never read the result rows but sums kept by triggers: ``cost_rollup``
(per 15-minute UTC bucket × model × size × label × provider; ``migrations.m002_cost_ledger``)
for a date range by model, size, label or provider; ``cost_totals`` (per model × size × label
× provider) for all time; per UTC day and per 15-minute bucket (``m008``, read through
:mod:`archive.timeline`) for the totals of a range and calendar groups. Calendar groups (day,
ISO week, month) are in a configured time zone: what falls between two local midnights is one
local date, so a DST change day has 23 or 25 hours and a result at 23:30 UTC is the next day
in Berlin. All UTC offsets in use since 1972 are multiples of 15 minutes, so no bucket
straddles a local midnight.

A result without a cost is never counted as zero silently: it is counted in
``resultsWithoutCost``, and the estimate of its share of the task in ``estimateWithoutCost``.
"""

import csv
import io
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from archive import parsing, timeline
from archive.timeline import local_days, local_midnight

CALENDAR_GROUPS = ("day", "week", "month")
DIMENSIONS = ("model", "size", "label", "provider")  # cost_rollup and cost_totals columns
SUMS = timeline.SUMS
GROUPS = CALENDAR_GROUPS + DIMENSIONS
PLACES = 10  # rounding of reported sums: float noise off, every 4-decimal cost kept
LEDGER_COLUMNS = ("task", "image", "time", "utc_offset", "prompt", "size", "steps", "seed",
                  "model", "label", "provider", "cost", "cost_status", "estimate")
FIRST_DAY, LAST_DAY = date.min + timedelta(days=1), date.max - timedelta(days=1)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # OWASP's CSV injection list


def zone(name):
    """The :class:`ZoneInfo` for an IANA name; :raises ValueError: for an unknown one."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as "
                         f"'Europe/Berlin' or 'UTC')") from exc


def local_today(tz, now=None):
    """Today's date in ``tz`` (``now`` an aware datetime, default the current time)."""
    return (now or datetime.now(timezone.utc)).astimezone(tz).date()


def bounds(tz, first=None, last=None):
    """``(start, end)`` epoch seconds of the local dates ``first`` … ``last`` inclusive;
    either may be None (open)."""
    start = local_midnight(first, tz) if first else None
    end = local_midnight(last + timedelta(days=1), tz) if last else None
    return start, end


def _where(column, start, end):
    clauses, args = [], []
    if start is not None:
        clauses.append(f"{column} >= ?")
        args.append(start)
    if end is not None:
        clauses.append(f"{column} < ?")
        args.append(end)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def usd(value):
    """A sum of USD for reports: None as 0, float noise rounded off."""
    return round(value or 0.0, PLACES)


def _row(key, cost, results, missing, missing_estimate):
    return {"key": key, "cost": usd(cost), "results": results or 0,
            "resultsWithoutCost": int(missing or 0),
            "estimateWithoutCost": usd(missing_estimate)}


def _by(conn, keys, start, end):
    """Rows ``(*keys, cost, results, missing, missing_estimate)`` over ``[start, end)``
    grouped by ``keys``: all of time from ``cost_totals``, a range by days and edges."""
    if start is None and end is None:
        names = ", ".join(keys)
        return conn.execute(f"SELECT {names}, {SUMS} FROM cost_totals GROUP BY {names}")
    return timeline.span_breakdown(conn, start, end, keys)


def totals(conn, start=None, end=None):
    """``{"cost", "results", "resultsWithoutCost", "estimateWithoutCost"}`` over
    ``[start, end)`` (epoch seconds, None for open)."""
    if start is None and end is None:
        row = conn.execute(f"SELECT {SUMS} FROM cost_totals").fetchone()
    else:
        row = timeline.span_sums(conn, [start, end])[0]
    out = _row(None, *row)
    del out["key"]
    return out


def calendar_key(day, group):
    """A local date's key: ``2024-03-31``, ISO week ``2025-W01``, or month ``2024-03``."""
    if group == "day":
        return day.isoformat()
    if group == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return f"{day.year:04d}-{day.month:02d}"


def _add(acc, key, sums):
    row = acc.setdefault(key, [0.0, 0, 0, 0.0])
    for i, value in enumerate(sums):
        row[i] += value


def _rows(acc, order):
    keys = sorted(acc) if order == "key" else sorted(acc, key=lambda k: (-acc[k][0], k or ""))
    return [_row(key, *acc[key]) for key in keys if acc[key][1]]


def breakdowns(conn, start=None, end=None):
    """Every dimension's rows (as :func:`breakdown`) from one scan of the rollup (for the
    dashboard: one scan grouped four ways beats four scans)."""
    acc = {dim: {} for dim in DIMENSIONS}
    for *keys, cost, results, missing, estimate in _by(conn, DIMENSIONS, start, end):
        for dim, key in zip(DIMENSIONS, keys):
            _add(acc[dim], key or None, (cost, results, missing, estimate))
    return {dim: _rows(acc[dim], "cost") for dim in DIMENSIONS}


def breakdown(conn, group, tz, start=None, end=None):
    """Rows ``{"key", "cost", "results", "resultsWithoutCost", "estimateWithoutCost"}``:
    calendar groups in date order, the others most expensive first."""
    if group not in GROUPS:
        raise ValueError(f"group must be one of {', '.join(GROUPS)}")
    acc = {}
    if group in DIMENSIONS:
        for key, *sums in _by(conn, (group,), start, end):
            _add(acc, key or None, sums)
        return _rows(acc, "cost")
    for day, *sums in local_days(conn, tz, start, end):
        _add(acc, calendar_key(day, group), sums)
    return _rows(acc, "key")


def summed(rows):
    """The totals of one grouping's rows, as :func:`totals` answers them."""
    acc = {}
    for row in rows:
        _add(acc, None, (row["cost"], row["results"], row["resultsWithoutCost"],
                         row["estimateWithoutCost"]))
    out = _row(None, *acc.get(None, (0.0, 0, 0, 0.0)))
    del out["key"]
    return out


def report(conn, tz, *, first=None, last=None, group="day"):
    """What ``GET /api/costs`` answers: totals of the local dates ``first`` … ``last``
    (None: open) and the ``groups`` of ``group``."""
    groups = breakdown(conn, group, tz, *bounds(tz, first, last))
    sums = summed(groups)
    return {
        "total": sums.pop("cost"), **sums, "currency": "USD", "timezone": tz.key,
        "from": first.isoformat() if first else None,
        "to": last.isoformat() if last else None, "group": group, "groups": groups,
    }


def daily_series(conn, tz, last, days=30):
    """``[(date, cost, results)]`` for the ``days`` local dates ending with ``last``,
    days without results included as zero."""
    first = last - timedelta(days=days - 1)
    start, end = bounds(tz, first, last)
    found = {row["key"]: row for row in breakdown(conn, "day", tz, start, end)}
    series = []
    for n in range(days):
        day = first + timedelta(days=n)
        row = found.get(day.isoformat(), {"cost": 0.0, "results": 0})
        series.append((day, row["cost"], row["results"]))
    return series


def _iso(epoch):
    """Epoch seconds as the catalogue's UTC text (``isoformat`` pads years before 1000 to
    four digits, ``strftime("%Y")`` does not, and these are compared as text)."""
    moment = datetime.fromtimestamp(epoch, timezone.utc).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds") + "Z"


def _text_bounds(start, end):
    return (None if start is None else _iso(start)), (None if end is None else _iso(end))


SMALL_RANGE = 5000  # tasks; see top_tasks
TASK_COLUMNS = ("task_uuid", "created_at", "positive_prompt", "model", "width", "height",
                "steps", "number_results", "results_received", "cost", "cost_missing",
                "estimate", "label", "provider", "status", "parent_task_uuid")


def _tasks_between(conn, first, stop):
    """About how many tasks were created in ``[first, stop)`` (text times, None: open): the
    distance of their ids, two steps along the index on ``created_at``."""
    low = conn.execute("SELECT id FROM tasks WHERE created_at >= ? ORDER BY created_at"
                       " LIMIT 1", (first or "",)).fetchone()
    high = conn.execute("SELECT id FROM tasks WHERE created_at < ? ORDER BY created_at DESC"
                        " LIMIT 1", (stop or "~",)).fetchone()
    return 0 if low is None or high is None else max(high[0] - low[0] + 1, 0)


def top_tasks(conn, *, start=None, end=None, limit=10):
    """The most expensive tasks created in ``[start, end)``, as dicts of ``TASK_COLUMNS``,
    newest first among equal costs (the order of the index on cost and time, so the tens
    of thousands of tasks that share the top price are never sorted)."""
    first, stop = _text_bounds(start, end)
    where, args = _where("created_at", first, stop)
    where = (where + " AND" if where else " WHERE") + " cost IS NOT NULL"
    # Walk costs down (m012) and test each date in the index, unless the range holds so
    # few tasks that sorting them all is cheaper than passing the others by.
    index = "tasks_cost"
    if args and _tasks_between(conn, first, stop) < SMALL_RANGE:
        index = "idx_tasks_created_at"
    cur = conn.execute(f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks INDEXED BY {index}{where}"
                       " ORDER BY cost DESC, created_at DESC, id DESC LIMIT ?", [*args, limit])
    return [dict(zip(TASK_COLUMNS, row)) for row in cur]


# A lineage family: an original task (the root) and every re-run below it, however deep;
# ``tasks.family_root`` names the root on every member (set on insert, migration m006).
_FAMILY_SUMS = ("SELECT count(*), total(cost), sum(cost_missing), sum(results_received)"
                " FROM tasks WHERE {where}")
_KEEPERS = ("SELECT count(*) FROM tasks t JOIN results r ON r.task_uuid = t.task_uuid"
            " AND r.starred = 1 WHERE {where}")


def _family_row(root, tasks, total, missing, results, keepers):
    return {"root": root, "tasks": tasks, "cost": usd(total), "results": results or 0,
            "resultsWithoutCost": missing or 0, "keepers": keepers,
            "costPerKeeper": usd(total / keepers) if keepers else None}


def families(conn, *, limit=10):
    """The most expensive families with at least one re-run: ``{"root", "tasks", "cost",
    "results", "resultsWithoutCost", "keepers" (starred results), "costPerKeeper"}``; their
    sums are kept in ``cost_families`` (migration m009)."""
    rows = conn.execute(
        "SELECT root, tasks, cost, missing, results, keepers FROM cost_families"
        " WHERE tasks > 0 ORDER BY cost DESC, root LIMIT ?", (limit,)).fetchall()
    return [_family_row(*row) for row in rows]


def family(conn, task_uuid):
    """The family ``task_uuid`` belongs to (as :func:`families`; a task never re-run is a
    family of one), or None for no such task."""
    row = conn.execute("SELECT family_root FROM tasks WHERE task_uuid = ?",
                       (task_uuid,)).fetchone()
    if row is None:
        return None
    root = row[0] or task_uuid
    column = "family_root" if row[0] else "task_uuid"
    sums = conn.execute(_FAMILY_SUMS.format(where=f"{column} = ?"), (root,)).fetchone()
    keepers = conn.execute(_KEEPERS.format(where=f"t.{column} = ?"), (root,)).fetchone()[0]
    return _family_row(root, *sums, keepers)


def csv_safe(value):
    """A cell a spreadsheet will not run: text starting like a formula gets a ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class _LocalClock:
    """UTC text times as local ``(YYYY-MM-DD HH:MM:SS, UTC±HH:MM)``; every offset is whole
    minutes, so one conversion per minute serves the ledger's time-ordered rows."""

    def __init__(self, tz):
        self.tz, self.minute, self.local = tz, None, None

    def __call__(self, received_at):
        if received_at[:16] != self.minute:
            at = datetime.fromisoformat(received_at[:16] + "+00:00").astimezone(self.tz)
            offset = at.strftime("%z")
            self.minute = received_at[:16]
            self.local = (at.strftime("%Y-%m-%d %H:%M:"), f"UTC{offset[:3]}:{offset[3:]}")
        return self.local[0] + received_at[17:19], self.local[1]


def ledger_rows(conn, tz, start=None, end=None):
    """One tuple of ``LEDGER_COLUMNS`` per result received in ``[start, end)``, in order;
    text that could come from a user or the provider is passed through :func:`csv_safe`."""
    where, args = _where("r.received_at", *_text_bounds(start, end))
    cur = conn.execute(
        "SELECT r.task_uuid, r.image_uuid, r.received_at, t.positive_prompt, t.width,"
        " t.height, t.steps, r.seed, t.model, t.label, t.provider, r.cost,"
        " t.estimate / t.number_results FROM results r"
        f" JOIN tasks t ON t.task_uuid = r.task_uuid{where} ORDER BY r.received_at, r.id",
        args)
    clock, safe = _LocalClock(tz), csv_safe
    for task, image, received_at, prompt, width, height, steps, seed, model, label, \
            provider, cost, share in cur:
        local, offset = clock(received_at)
        yield (safe(task), safe(image), local, offset, safe(prompt),
               f"{width}x{height}" if width and height else "", steps, seed, safe(model),
               safe(label or ""), safe(provider), "" if cost is None else cost,
               "missing" if cost is None else "returned",
               "" if share is None else round(share, PLACES))


def ledger_csv(conn, tz, start=None, end=None, *, chunk=1000):
    """The ledger as CSV text in pieces (a UTF-8 BOM first, for spreadsheets), safe
    against formula injection; ``estimate`` is the task's estimate per image."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(LEDGER_COLUMNS)
    for n, row in enumerate(ledger_rows(conn, tz, start, end), start=1):
        writer.writerow(row)
        if n % chunk == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def parse_day(text, name):
    """A ``YYYY-MM-DD`` query value as a date; :raises ValueError: naming ``name``.

    The calendar's first and last days are refused: :func:`bounds` goes on to the
    midnight after ``to`` and a local midnight is up to a day away from UTC's, so the
    days one step inside are the widest range whose arithmetic stays in the calendar.
    """
    try:
        return parsing.parse_day(text, earliest=FIRST_DAY, latest=LAST_DAY)
    except ValueError as exc:
        raise ValueError(f"{name} {exc}") from None
