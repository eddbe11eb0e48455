"""The archive's daily and monthly budgets, kept in the catalogue (no Flask).

A limit read from the server's environment bound only that server: ``runware-archive
submit`` from another shell never saw it. Kept in ``budget_limits`` (migration 27), a
limit binds every process that opens the catalogue, and :func:`archive.budgets.admit`
reads it inside the transaction that admits a task.

Where a limit comes from, most recent first wins:

- ``/costs`` (the budget form) and ``runware-archive budget set|clear`` change it at once;
- ``RUNWARE_ARCHIVE_BUDGET_DAILY`` / ``_MONTHLY`` set it when a process starts with a value
  different from the one the variable last set (``env_value``). A process started again
  with the same environment leaves a limit changed since in the page or the CLI alone: a
  budget lowered in a hurry must not come back raised after a restart, and editing the
  variable must still take effect. A variable taken away leaves the limit as it is (clear
  it in the page or the CLI).
"""

import math

from archive.records import utcnow

PERIODS = ("daily", "monthly")
SOURCES = ("env", "cli", "ui")
ENV_NAMES = {"daily": "RUNWARE_ARCHIVE_BUDGET_DAILY", "monthly": "RUNWARE_ARCHIVE_BUDGET_MONTHLY"}


def check_limit(value):
    """``value`` as a limit in USD (a finite number, 0 or more) or None.

    :raises ValueError: anything else.
    """
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"a budget is a number of USD, 0 or more, not {value!r}")
    return number


def stored(conn):
    """``{period: {"limit", "source", "set_at"}}`` for each period that has a row (a
    cleared limit has ``limit`` None)."""
    return {period: {"limit": limit, "source": source, "set_at": set_at}
            for period, limit, source, set_at in conn.execute(
                "SELECT period, limit_usd, source, set_at FROM budget_limits")}


def limits(conn):
    """``(daily, monthly)`` in USD, None where there is none."""
    rows = stored(conn)
    return tuple((rows.get(period) or {}).get("limit") for period in PERIODS)


def put(conn, period, value, source, env_value=None):
    """Write one period's limit (None clears it) inside the caller's transaction; the
    variable's last applied value is kept unless ``env_value`` replaces it."""
    if period not in PERIODS or source not in SOURCES:
        raise ValueError(f"no budget period {period!r} or source {source!r}")
    conn.execute(
        "INSERT INTO budget_limits (period, limit_usd, source, set_at, env_value)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (period) DO UPDATE SET"
        " limit_usd = excluded.limit_usd, source = excluded.source, set_at = excluded.set_at,"
        " env_value = coalesce(excluded.env_value, env_value)",
        (period, check_limit(value), source, utcnow(), env_value))


def set_limits(catalogue, source, **values):
    """Set (a number) or clear (None) the periods named in ``values``, in one write.

    :raises ValueError: an unknown period or a limit that is not a number of USD.
    """
    checked = {period: check_limit(value) for period, value in values.items()}
    unknown = set(checked) - set(PERIODS)
    if unknown:
        raise ValueError(f"no budget period {sorted(unknown)}")
    with catalogue.write() as conn:
        for period, value in checked.items():
            put(conn, period, value, source)


def apply_environment(catalogue, settings):
    """Store the limits the ``RUNWARE_ARCHIVE_BUDGET_*`` settings give, where they differ
    from what the variable last set; returns the periods written. Reads first, so a start
    with nothing new takes no lock.

    :raises ValueError: a variable that is not a number of USD.
    """
    given = {}
    for period, name in ENV_NAMES.items():
        raw = settings.get(name)
        if raw not in (None, ""):
            given[period] = check_limit(raw)
    if not given:
        return []
    seen = dict(catalogue.conn.execute("SELECT period, env_value FROM budget_limits"))
    changed = {p: v for p, v in given.items() if seen.get(p) != repr(v)}
    if changed:
        with catalogue.write() as conn:
            seen = dict(conn.execute("SELECT period, env_value FROM budget_limits"))
            for period, value in changed.items():
                if seen.get(period) != repr(value):
                    put(conn, period, value, "env", env_value=repr(value))
    return sorted(changed)
