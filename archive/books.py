"""Our books against Runware's (no Flask, no HTTP): what the archive spent per local day, the
arithmetic that sets it beside what Runware billed, and the stored result of the last pass
(migration 21), which ``/costs``, ``runware-archive books`` and ``stats`` read.

A day's *archive* total is what the results of the tasks **submitted** that day (local
date in ``RUNWARE_ARCHIVE_TIMEZONE``) cost, as each result returned it: a task's cost is
counted on the day it ran, as Runware bills it, even when its results came in days later
(recovered through ``getTaskDetails``). Runware's total is its ``getUsageActivity`` spend for
the same date, asked with the same ``timezone``, so both cut their days at the same local
midnight. Their *difference* (Runware's less ours) is explained by the day's tasks with
results still missing (named, with their estimate), and by what other API keys of the
account spent (Runware's total less the archive key's own, when that key is known).
"""

import json
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone

from archive import states
from archive.records import rows, utcnow

NAMED = 100  # taskUUIDs named per day and list
PLACES = 6  # USD digits kept: Runware prices to 4, sums of floats need a little room
MISSING = (f"results_received + errors_received < number_results AND status != '{states.COMPLETE}'"
           f" AND NOT (status = '{states.ERROR}' AND acknowledged_at IS NULL)")


def usd(value):
    """``value`` rounded to :data:`PLACES` (None stays None), so float noise never shows."""
    return None if value is None else round(value + 0.0, PLACES)


def day_span(day, tz):
    """The catalogue's time stamps (ISO UTC text) of local midnight ``day`` and the next."""
    def stamp(d):
        moment = datetime.combine(d, time(), tz).astimezone(timezone.utc)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return stamp(day), stamp(day + timedelta(days=1))


@dataclass
class Day:
    """One local date of the books."""

    date: str
    archive: float = 0.0
    estimate: float = 0.0
    runware: float | None = None
    own_key: float | None = None
    missing: list = field(default_factory=list)
    missing_estimate: float = 0.0
    recovered: list = field(default_factory=list)

    @property
    def difference(self):
        """Runware's total less ours, or None when Runware's is not known."""
        return None if self.runware is None else usd(self.runware - self.archive)

    @property
    def other_keys(self):
        """What other API keys of the account spent that day, when it can be told."""
        if self.runware is None or self.own_key is None:
            return None
        return usd(max(self.runware - self.own_key, 0.0))

    def as_json(self):
        """The day as ``runware-archive books --json`` prints it."""
        return {"date": self.date, "archive": usd(self.archive), "runware": usd(self.runware),
                "difference": self.difference, "tasks": list(self.missing)}


def archive_day(conn, day, tz, provider):
    """The archive's side of local ``day`` for tasks sent to ``provider``: a :class:`Day`."""
    start, stop = day_span(day, tz)
    where = "created_at >= ? AND created_at < ? AND provider = ?"
    args = (start, stop, provider)
    cost, estimate = conn.execute(
        f"SELECT total(cost), total(estimate) FROM tasks WHERE {where}", args).fetchone()
    missing = rows(conn, f"SELECT task_uuid, max(coalesce(estimate, 0) - coalesce(cost, 0), 0)"
                         f" AS owed FROM tasks WHERE {where} AND {MISSING}"
                         f" ORDER BY created_at LIMIT {NAMED}", args)
    recovered = [row[0] for row in conn.execute(
        "SELECT DISTINCT t.task_uuid FROM tasks t JOIN deliveries d USING (task_uuid)"
        " WHERE t.created_at >= ? AND t.created_at < ? AND t.provider = ?"
        f" AND d.source = 'taskDetails' LIMIT {NAMED}", args)]
    return Day(day.isoformat(), archive=cost, estimate=estimate,
               missing=[m["task_uuid"] for m in missing],
               missing_estimate=sum(m["owed"] for m in missing), recovered=recovered)


def dates(first, last):
    """Every date from ``first`` to ``last`` inclusive."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def runway(balance, burn_7_days):
    """Days the balance lasts at the trailing week's pace; None when nothing was spent."""
    if balance is None or not burn_7_days or burn_7_days <= 0:
        return None
    return round(balance / (burn_7_days / 7), 1)


def store(catalogue, days, account):
    """Keep one pass's ``days`` (replacing those dates) and ``account`` (a dict of
    ``timezone``, ``balance``, ``currency``, ``burn_7_days``, ``runway_days``, ``problem``)."""
    now = utcnow()
    with catalogue.write() as conn:
        conn.executemany(
            "INSERT OR REPLACE INTO books_days VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(d.date, usd(d.archive), usd(d.estimate), usd(d.runware), usd(d.own_key),
              json.dumps(d.missing), usd(d.missing_estimate), json.dumps(d.recovered), now)
             for d in days])
        conn.execute(
            "INSERT OR REPLACE INTO books_account VALUES (1, ?, ?, ?, ?, ?, ?, ?)",
            (account["timezone"], account.get("balance"), account.get("currency"),
             account.get("burn_7_days"), account.get("runway_days"), account.get("problem"),
             now))


def stored_days(conn, first=None, last=None, limit=400):
    """The stored :class:`Day` rows from ``first`` to ``last`` (dates or None), newest first,
    each with ``checked_at``."""
    found = rows(conn, "SELECT * FROM books_days WHERE date >= ? AND date <= ?"
                       " ORDER BY date DESC LIMIT ?",
                 (str(first or "0000"), str(last or "9999"), limit))
    out = []
    for row in found:
        day = Day(row["date"], row["archive"], row["estimate"], row["runware"], row["own_key"],
                  json.loads(row["missing"]), row["missing_estimate"],
                  json.loads(row["recovered"]))
        day.checked_at = row["checked_at"]
        out.append(day)
    return out


def stored_account(conn):
    """The last pass's account row as a dict, or None before the first pass."""
    found = rows(conn, "SELECT * FROM books_account WHERE id = 1")
    return found[0] if found else None


def new_alerts(catalogue, alerts):
    """Record the ``alerts`` (dicts with ``type`` and ``key``) not raised before, in one
    write; returns those, to be sent. An alert is raised once per type and key."""
    if not alerts:
        return []
    now, fresh = utcnow(), []
    with catalogue.write() as conn:
        for alert in alerts:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO books_alerts (kind, alert_key, body, created_at)"
                " VALUES (?, ?, ?, ?)", (alert["type"], alert["key"], json.dumps(alert), now))
            if inserted.rowcount:
                fresh.append(alert)
    return fresh


def note_alert(conn, alert, sent_at, error):
    """How an alert's POST went (``archive.budgets.send_alerts``' ``note``)."""
    conn.execute("UPDATE books_alerts SET alert_sent_at = ?, alert_error = ?"
                 " WHERE kind = ? AND alert_key = ?", (sent_at, error, alert["type"],
                                                       alert["key"]))


def alerts_for(days, account, *, threshold, balance_floor, today):
    """The alerts the pass calls for: each day whose difference is past ``threshold`` USD
    (either way), and the balance under ``balance_floor`` (once a local day)."""
    out = []
    for day in days:
        if threshold is not None and day.difference is not None \
                and abs(day.difference) > threshold:
            out.append({"type": "booksDifference", "key": day.date, "date": day.date,
                        "archive": usd(day.archive), "runware": usd(day.runware),
                        "difference": day.difference, "threshold": threshold,
                        "tasks": day.missing, "otherKeys": day.other_keys, "currency": "USD",
                        "message": f"Runware billed ${day.runware:.4f} on {day.date}, the "
                                   f"archive counts ${day.archive:.4f}: a difference of "
                                   f"${day.difference:.4f}, past ${threshold:.4f}"})
    balance = account.get("balance")
    if balance_floor is not None and balance is not None and balance < balance_floor:
        out.append({"type": "balanceLow", "key": today.isoformat(), "balance": balance,
                    "floor": balance_floor, "runwayDays": account.get("runway_days"),
                    "currency": account.get("currency") or "USD",
                    "message": f"Runware balance ${balance:.4f} is under ${balance_floor:.4f}"})
    return out
