"""The delivery log ``/deliveries``: every webhook (and sync or polled reply) received,
accepted, duplicate or rejected and why, with its body. Tokens are never stored, so
never shown."""

from datetime import datetime, timedelta, timezone

from flask import Blueprint, abort, render_template, request

from archive import delivery_log
from archive.records import kept_of
from archive.parsing import INT64_MAX, parse_int
from receiver import get_catalogue

bp = Blueprint("deliveries", __name__)



@bp.get("/deliveries")
def index():
    """The log newest first, filtered by ``verdict``, ``reason`` and ``task``."""
    verdict = request.args.get("verdict") or None
    if verdict not in (None, *delivery_log.VERDICTS):
        verdict = None
    reason = (request.args.get("reason") or "").strip()[:200] or None
    task_uuid = (request.args.get("task") or "").strip()[:64] or None
    before = request.args.get("before") or None
    if before is not None:
        try:
            before = parse_int(before, minimum=1)
        except ValueError as exc:
            abort(400, description=f"before {exc} (the id of a delivery).")
    conn = get_catalogue().conn
    rows, nxt = delivery_log.deliveries(
        conn, verdict=verdict, reason=reason, task_uuid=task_uuid, before=before)
    now = datetime.now(timezone.utc)
    day_ago, week_ago = ((now - timedelta(days=days)).strftime("%Y-%m-%dT%H") for days in (1, 7))
    return render_template("deliveries/index.html", rows=rows, next=nxt, verdict=verdict,
                           reason=reason, task_uuid=task_uuid,
                           verdicts=delivery_log.VERDICTS,
                           reasons=delivery_log.reason_kinds(conn, week_ago),
                           refusals=delivery_log.refusal_summary(conn, day_ago),
                           samples={"source": delivery_log.SAMPLES_PER_SOURCE,
                                    "hour": delivery_log.SAMPLES_PER_HOUR})


@bp.get("/deliveries/<int:delivery_id>")
def detail(delivery_id):
    """One delivery with its raw body (as text, escaped)."""
    conn = get_catalogue().conn
    # The route takes any run of digits; past SQLite's range no delivery can have it.
    row = delivery_log.delivery(conn, delivery_id) if delivery_id <= INT64_MAX else None
    if row is None:
        abort(404, description=f"There is no delivery {delivery_id}.")
    return render_template("deliveries/detail.html", row=row, kept=kept_of(row["body"]),
                           task_exists=get_catalogue().has_task(row["task_uuid"]))

