"""Cost tracking in the app: the ``/costs`` dashboard, the ``GET /api/costs`` answer,
``budget_warnings()`` for every page (a read) and ``costs_changed()``, which the webhook calls
after storing results. The sums come from :mod:`archive.costs`."""

import threading
from datetime import datetime, timedelta, timezone

from flask import (
    Blueprint, Response, current_app, jsonify, render_template, request, stream_with_context,
)

from archive import budgets, costs
from receiver import get_catalogue

bp = Blueprint("costs", __name__)
FORMATS = ("json", "csv")
CHART_DAYS = 30
CHART = {"width": 720, "height": 200, "left": 56, "bottom": 24, "top": 8}
_WATCH_LOCK = threading.Lock()


class QueryError(ValueError):
    """Bad ``/api/costs`` query parameters; ``.errors`` as the API shows them."""

    def __init__(self, errors):
        super().__init__(errors)
        self.errors = errors


@bp.record_once
def check_settings(state):
    """Refuse to start with a time zone or budget that cannot be read."""
    try:
        budgets.Budget.from_settings(state.app.config)
    except ValueError as exc:
        raise SystemExit(f"cost settings: {exc}") from None


def zone():
    """The configured ``RUNWARE_ARCHIVE_TIMEZONE``."""
    return costs.zone(current_app.config["RUNWARE_ARCHIVE_TIMEZONE"])


def budget():
    """The configured :class:`archive.budgets.Budget`."""
    return budgets.current(get_catalogue().conn, current_app.config)


def parse_query(args):
    """``(first, last, group, format)`` from ``from``, ``to``, ``group`` and ``format``.

    :raises QueryError: a value is malformed or out of its set.
    """
    errors, days = [], {}
    for name in ("from", "to"):
        try:
            days[name] = costs.parse_day(args[name], name) if args.get(name) else None
        except ValueError as exc:
            errors.append({"parameter": name, "message": str(exc)})
    if days.get("from") and days.get("to") and days["from"] > days["to"]:
        errors.append({"parameter": "to", "message": "must not be before from"})
    group, fmt = args.get("group", "day"), args.get("format", "json")
    if group not in costs.GROUPS:
        errors.append({"parameter": "group",
                       "message": f"must be one of {', '.join(costs.GROUPS)}"})
    if fmt not in FORMATS:
        errors.append({"parameter": "format", "message": "must be json or csv"})
    if errors:
        raise QueryError(errors)
    return days["from"], days["to"], group, fmt


def api_costs():
    """The body of ``GET /api/costs``: the JSON report, or the CSV ledger, streamed."""
    try:
        first, last, group, fmt = parse_query(request.args)
    except QueryError as exc:
        return jsonify(errors=exc.errors), 400
    tz, conn = zone(), get_catalogue().conn
    if fmt == "json":
        return jsonify(costs.report(conn, tz, first=first, last=last, group=group))
    name = "runware-costs-{}-{}.csv".format(first or "start", last or "now")
    return Response(
        stream_with_context(costs.ledger_csv(conn, tz, *costs.bounds(tz, first, last))),
        mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def budget_status():
    """Each configured limit's status: a read only. A page view never records a crossing
    nor sends an alert; those happen where the costs change (:func:`costs_changed`, the
    submission, the worker's minute check), so they come whether or not anyone looks."""
    plan = budget()
    if not plan.active:
        return []
    return budgets.status(get_catalogue().conn, plan)


def costs_changed(app):
    """After results were stored: evaluate the budgets on the app's :class:`Watch` thread,
    so the caller (the webhook) answers first; returns the thread started, if any."""
    if not budgets.current(app.extensions["catalogue"].conn, app.config).active:
        return None
    try:
        return budget_watch(app).poke()
    except RuntimeError as exc:  # no thread to be had: stored is stored, the worker checks
        app.logger.warning("budgets not evaluated after this delivery: %s", exc)
        return None


def budget_watch(app):
    """The app's :class:`archive.budgets.Watch` (made on first use: one per process, so
    concurrent deliveries share its passes)."""
    with _WATCH_LOCK:
        watch = app.extensions.get("budget_watch")
        if watch is None:
            watch = app.extensions["budget_watch"] = budgets.Watch(
                app.extensions["catalogue"], lambda: budgets.current(app.extensions["catalogue"].conn, app.config))
    return watch


@bp.app_context_processor
def page_helpers():
    """``budget_warnings()`` for every template: the limits at 80% or more."""
    return {"budget_warnings": lambda: [s for s in budget_status() if s["warning"]]}


@bp.app_template_filter("usd")
def usd(value):
    """A USD amount as shown on pages: ``$0.0013`` (Runware prices to 4 decimals)."""
    return "—" if value is None else f"${value:,.4f}"


def bar_chart(series):
    """Bars for the per-day SVG chart: geometry computed here, drawn by the template."""
    c = CHART
    plot_w, plot_h = c["width"] - c["left"], c["height"] - c["bottom"] - c["top"]
    peak = max((cost for _, cost, _ in series), default=0) or 0
    step = plot_w / max(len(series), 1)
    bars = []
    for i, (day, cost, results) in enumerate(series):
        h = plot_h * cost / peak if peak else 0
        bars.append({"x": round(c["left"] + i * step + 1, 2), "width": round(step - 2, 2),
                     "y": round(c["top"] + plot_h - h, 2), "height": round(h, 2),
                     "day": day, "cost": cost, "results": results,
                     "tick": (len(series) - 1 - i) % 7 == 0,  # today, and every week back
                     "label_x": round(c["left"] + (i + 0.5) * step, 2)})
    if bars:  # the last label ends at the edge instead of running past it
        bars[-1].update(label_x=c["width"], anchor="end")
    return {**c, "peak": peak, "bars": bars, "base": c["top"] + plot_h,
            "label_y": c["height"] - 6}


@bp.get("/costs")
def index():
    """The dashboard: totals, the last 30 days, budgets, breakdowns, costliest tasks."""
    try:
        first, last, _, _ = parse_query({k: v for k, v in request.args.items()
                                         if k in ("from", "to")})
    except QueryError as exc:
        return render_template("costs/index.html", errors=exc.errors), 400
    tz, conn = zone(), get_catalogue().conn
    today = costs.local_today(tz, datetime.now(timezone.utc))
    start, end = costs.bounds(tz, first, last)
    breakdowns = costs.breakdowns(conn, start, end)
    in_range = costs.summed(breakdowns["provider"])
    return render_template(
        "costs/index.html", errors=[], tz=tz.key, first=first, last=last, today=today,
        totals={
            "today": costs.totals(conn, *costs.bounds(tz, today, today)),
            "month": costs.totals(conn, *costs.bounds(tz, today.replace(day=1), today)),
            "all": in_range if first is None and last is None else costs.totals(conn),
        },
        range_totals=in_range,
        chart=bar_chart(costs.daily_series(conn, tz, today, CHART_DAYS)),
        chart_from=today - timedelta(days=CHART_DAYS - 1),
        breakdowns={dim: rows[:10] for dim, rows in breakdowns.items()},
        top=costs.top_tasks(conn, start=start, end=end, limit=10),
        families=costs.families(conn, limit=10), budgets=budget_status(),
        csv_args={k: v.isoformat() for k, v in (("from", first), ("to", last)) if v},
    )
