"""Daily and monthly budgets (no Flask): refuse a task before it is sent, warn at 80%.

The rule (issue 6): a task is refused when

    spent in the period + in flight + the task's estimate  >  the period's limit

strictly greater: reaching the limit exactly is allowed (sums compared to 1e-8 USD, so float
noise never decides). *Spent* is what the period's results cost (local day or month in the
configured time zone), plus the estimated share of each result that came without a cost;
*in flight* is, for every task not yet ``complete`` or ``error``, its estimate minus what its
results already cost (never below zero). The check and the task's insert run in one
``BEGIN IMMEDIATE`` transaction, so two submissions cannot both fit into the same room.

Each time a period's committed sum (spent + in flight) reaches 80% and 100% of its limit, the
crossing is recorded once in ``budget_crossings`` (per period, threshold and limit) and, with
an alert URL, one JSON alert is POSTed from a background thread after the commit. Crossings
are evaluated where the sums change, never where they are shown: at admission (in its
transaction), after an ingest that stored results (:func:`evaluate`, through a
:class:`Watch` on the webhook's path) and by the worker every minute, which catches what
another process or a lowered limit brought. :func:`status` only reads, so pages never write.
"""

import logging
import sqlite3
import threading
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

import requests

from archive import budget_store, costs, keys, timeline
from archive.catalogue import utcnow

WARN_AT = 0.8
THRESHOLDS = (WARN_AT, 1.0)
EPSILON = 1e-8
ALERT_TIMEOUT = 5.0

log = logging.getLogger(__name__)


def _float_or_none(value):
    return None if value in (None, "") else float(value)


@dataclass(frozen=True)
class Budget:
    """Limits in USD (None: no limit), the zone their days and months are in, where to alert."""

    daily: float | None = None
    monthly: float | None = None
    tz: ZoneInfo = ZoneInfo("UTC")
    alert_url: str | None = None
    stored: bool = False  # the limits are the catalogue's: admit() reads them again

    @classmethod
    def from_settings(cls, settings):
        """From a mapping of ``RUNWARE_ARCHIVE_*`` settings (the app's config) alone: the
        environment's view of the limits, which :func:`archive.budget_store.apply_environment`
        stores; what binds is :func:`current`."""
        return cls(
            daily=_float_or_none(settings.get("RUNWARE_ARCHIVE_BUDGET_DAILY")),
            monthly=_float_or_none(settings.get("RUNWARE_ARCHIVE_BUDGET_MONTHLY")),
            tz=costs.zone(settings.get("RUNWARE_ARCHIVE_TIMEZONE")),
            alert_url=settings.get("RUNWARE_ARCHIVE_ALERT_URL") or None,
        )

    @property
    def active(self):
        """True when at least one limit is set."""
        return self.daily is not None or self.monthly is not None


def current(conn, settings):
    """The budget that binds: the limits kept in the catalogue (:mod:`archive.budget_store`,
    the same for every process), the time zone and alert URL from ``settings``."""
    daily, monthly = budget_store.limits(conn)
    return Budget(daily=daily, monthly=monthly, tz=costs.zone(settings.get("RUNWARE_ARCHIVE_TIMEZONE")),
                  alert_url=settings.get("RUNWARE_ARCHIVE_ALERT_URL") or None, stored=True)


def periods(budget, now=None):
    """``[(name, key, limit, start epoch second)]`` for each limit that is set."""
    today = costs.local_today(budget.tz, now)
    found = []
    if budget.daily is not None:
        found.append(("daily", today.isoformat(), budget.daily,
                      costs.local_midnight(today, budget.tz)))
    if budget.monthly is not None:
        first = date(today.year, today.month, 1)
        found.append(("monthly", first.strftime("%Y-%m"), budget.monthly,
                      costs.local_midnight(first, budget.tz)))
    return found


def spent_since(conn, start):
    """USD spent from epoch second ``start`` on, missing costs at their estimate."""
    cost, _, _, estimate = timeline.span_sums(conn, [start, None])[0]
    return cost + estimate


def in_flight(conn):
    """USD still to come: estimates of unfinished tasks minus what they already cost."""
    # Literal values, as in the partial index tasks_in_flight (m006), so SQLite can use it.
    return conn.execute(
        "SELECT total(max(estimate - coalesce(cost, 0), 0)) FROM tasks"
        " WHERE status NOT IN ('complete', 'error', 'lost') AND estimate IS NOT NULL"
    ).fetchone()[0]


def status(conn, budget, now=None):
    """One dict per limit set: ``period``, ``key``, ``limit``, ``spent``, ``inFlight``,
    ``committed``, ``ratio``, ``warning`` (≥ 80%) and ``reached`` (≥ 100%)."""
    flight = in_flight(conn)
    out = []
    for name, key, limit, start in periods(budget, now):
        spent = spent_since(conn, start)
        committed = spent + flight
        ratio = committed / limit if limit > 0 else (0.0 if committed <= 0 else float("inf"))
        out.append({"period": name, "key": key, "limit": limit, "spent": costs.usd(spent),
                    "inFlight": costs.usd(flight), "committed": costs.usd(committed),
                    "ratio": ratio, "warning": ratio >= WARN_AT - EPSILON,
                    "reached": ratio >= 1 - EPSILON, "timezone": budget.tz.key})
    return out


def refusal(conn, budget, estimate, now=None):
    """The message refusing a task of ``estimate`` USD, or None when it fits every limit."""
    for period in status(conn, budget, now):
        after = period["committed"] + estimate
        if after > period["limit"] + EPSILON:
            when = "today" if period["period"] == "daily" else "this month"
            return (
                f"budget exceeded: this task's estimate ${estimate:.4f} would take {when}'s "
                f"spending ({period['key']}, {period['timezone']}) to ${after:.4f} "
                f"(${period['spent']:.4f} spent + ${period['inFlight']:.4f} in flight), past "
                f"the {period['period']} budget of ${period['limit']:.4f}; nothing was sent"
            )
    return None


def record_crossings(conn, budget, now=None):
    """Record each threshold the committed sums have reached and that was not recorded yet
    (inside the caller's transaction); returns the new crossings as alert payloads."""
    new = []
    for period in status(conn, budget, now):
        for threshold in THRESHOLDS:
            if period["committed"] <= 0 or period["ratio"] < threshold - EPSILON:
                continue
            crossed_at = utcnow()
            cur = conn.execute(
                "INSERT OR IGNORE INTO budget_crossings (period, period_key, threshold,"
                " limit_usd, crossed_at, committed) VALUES (?, ?, ?, ?, ?, ?)",
                (period["period"], period["key"], threshold, period["limit"], crossed_at,
                 period["committed"]))
            if cur.rowcount == 1:
                new.append(alert_payload(period, threshold, crossed_at))
    return new


def unrecorded(conn, budget, now=None):
    """True when some threshold is reached but not yet recorded (a read, no lock)."""
    for period in status(conn, budget, now):
        for threshold in THRESHOLDS:
            if period["committed"] > 0 and period["ratio"] >= threshold - EPSILON and \
                    conn.execute("SELECT 1 FROM budget_crossings WHERE period = ? AND"
                                 " period_key = ? AND threshold = ? AND limit_usd = ?",
                                 (period["period"], period["key"], threshold,
                                  period["limit"])).fetchone() is None:
                return True
    return False


def alert_payload(period, threshold, crossed_at):
    """The JSON body POSTed to the alert URL for one crossing."""
    return {
        "type": "budgetThreshold", "period": period["period"], "periodKey": period["key"],
        "timezone": period["timezone"], "threshold": threshold, "limit": period["limit"],
        "spent": period["spent"], "inFlight": period["inFlight"],
        "committed": period["committed"], "crossedAt": crossed_at, "currency": "USD",
        "message": f"{threshold:.0%} of the {period['period']} budget "
                   f"(${period['limit']:.4f}) reached for {period['key']}: "
                   f"${period['committed']:.4f} spent or in flight",
    }


def key_refusal(conn, key, budget, estimate, now=None):
    """The message refusing a task of ``estimate`` USD sent with client key ``key`` (a row
    of :func:`archive.keys.authenticate`), or None when it fits the key's own limits. The
    key's days and months are the archive's (``budget``'s time zone)."""
    limits = Budget(daily=key.get("daily_budget"), monthly=key.get("monthly_budget"),
                    tz=budget.tz if budget is not None else ZoneInfo("UTC"))
    for name, period_key, limit, start in periods(limits, now):
        committed = keys.committed(conn, key["id"], start)
        after = committed + estimate
        if after > limit + EPSILON:
            when = "today" if name == "daily" else "this month"
            return (
                f"budget exceeded: this task's estimate ${estimate:.4f} would take key "
                f"{key['label']!r}'s spending {when} ({period_key}, {limits.tz.key}) to "
                f"${after:.4f} (${committed:.4f} spent or in flight), past the key's {name} "
                f"budget of ${limit:.4f}; nothing was sent"
            )
    return None


def admit(catalogue, row, estimate, budget, now=None, key=None):
    """Insert the task ``row`` unless its ``estimate`` would pass a limit, in one
    ``BEGIN IMMEDIATE`` transaction; returns ``(refusal message or None, new crossings)``.

    :param key: the client key the task came with: its own limits are checked too, in the
        same transaction (two requests on one key cannot both fit into its last room).
    """
    with catalogue.write() as conn:
        if budget is not None and budget.stored:  # as set now, under the write lock
            daily, monthly = budget_store.limits(conn)
            budget = Budget(daily, monthly, budget.tz, budget.alert_url, stored=True)
        if budget is not None and budget.active:
            message = refusal(conn, budget, estimate, now)
            if message:
                return message, []
        if key is not None:
            message = key_refusal(conn, key, budget, estimate, now)
            if message:
                return message, []
        catalogue.create_task(row, conn=conn)
        if budget is None or not budget.active:
            return None, []
        return None, record_crossings(conn, budget, now)


def evaluate(catalogue, budget, now=None):
    """Record the thresholds reached since the last evaluation, in one short write, and
    alert them from a thread; returns the new crossings. It reads first, so when nothing
    is new (nearly always) no lock is taken; a busy catalogue leaves the crossing to the
    next evaluation (the worker's, at the latest) rather than failing the caller."""
    if budget is None or not budget.active or not unrecorded(catalogue.conn, budget, now):
        return []
    try:
        with catalogue.write() as conn:
            crossings = record_crossings(conn, budget, now)
    except sqlite3.OperationalError as exc:  # CatalogueBusy among them
        log.warning("budget crossings not recorded this time: %s", exc)
        return []
    send_alerts(catalogue, budget.alert_url, crossings)
    return crossings


class Watch:
    """Runs :func:`evaluate` on a thread of its own when poked, so a webhook's answer never
    waits for the look, the short write or the alert. Pokes that come while it runs are
    folded into one more pass: a burst of deliveries costs a pass or two, not one each.

    :param budget_of: returns the current :class:`Budget` (settings may change).
    """

    def __init__(self, catalogue, budget_of):
        self._catalogue, self._budget_of = catalogue, budget_of
        self._lock = threading.Lock()
        self._pending = self._running = False

    def poke(self):
        """Ask for a pass; returns the thread started, or None when one already runs."""
        with self._lock:
            self._pending = True
            if self._running:
                return None
            self._running = True
        thread = threading.Thread(target=self._run, name="budget-watch", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to be had: let the next poke try again
            with self._lock:
                self._running = False
            raise
        return thread

    def _run(self):
        try:
            while self._take():
                try:
                    evaluate(self._catalogue, self._budget_of())
                except Exception:  # noqa: BLE001 - logged; the worker evaluates again
                    log.exception("budget evaluation failed")
        finally:
            self._catalogue.close()

    def _take(self):
        """Whether a pass is wanted (clearing the request); False also ends the run."""
        with self._lock:
            wanted, self._pending = self._pending, False
            self._running = wanted
            return wanted


def send_alerts(catalogue, url, crossings, *, post=requests.post, timeout=ALERT_TIMEOUT,
                note=None):
    """POST each crossing to ``url`` from a daemon thread (never blocking the caller) and
    note the outcome on its row; returns the thread, or None when there is nothing to send.

    :param note: ``note(conn, crossing, sent_at, error)`` records how one POST went, in a
        write transaction; default :func:`note_crossing` (the ``budget_crossings`` row).
        Other alerts (``archive.books``) pass their own.
    """
    if not url or not crossings:
        return None
    thread = threading.Thread(target=_deliver, args=(catalogue, url, crossings, post, timeout,
                                                     note or note_crossing),
                              name="budget-alerts", daemon=True)
    thread.start()
    return thread


def note_crossing(conn, crossing, sent_at, error):
    """How a budget crossing's alert went, on its ``budget_crossings`` row."""
    conn.execute(
        "UPDATE budget_crossings SET alert_sent_at = ?, alert_error = ?"
        " WHERE period = ? AND period_key = ? AND threshold = ? AND limit_usd = ?",
        (sent_at, error, crossing["period"], crossing["periodKey"], crossing["threshold"],
         crossing["limit"]))


def _deliver(catalogue, url, crossings, post, timeout, note):
    try:
        for crossing in crossings:
            error = None
            try:
                post(url, json=crossing, timeout=timeout).raise_for_status()
            except requests.RequestException as exc:
                error = f"{type(exc).__name__}: {exc}"[:500]
                log.warning("alert to %s failed: %s", url, error)
            with catalogue.write() as conn:
                note(conn, crossing, None if error else utcnow(), error)
    finally:
        catalogue.close()
