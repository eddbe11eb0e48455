"""The books pass: ask Runware what it billed, set it beside the archive's own totals
(:mod:`archive.books`), keep the result, raise the alerts it calls for.

One POST holds every question (Runware's REST body is an array of tasks):

- ``accountManagement`` / ``getUsageActivity`` over the window, ``groupBy: ["date"]`` and
  ``timezone`` = ``RUNWARE_ARCHIVE_TIMEZONE``, so Runware cuts its days at the archive's
  local midnight (Runware/runware-typescript ``src/types/task-map.ts``
  ``AccountManagementParams.timezone``: "IANA timezone name used for day-bucketing"; its
  default when none is sent is not documented). The window is split into spans of at most
  30 days, the limit the same type map gives for ``startDate``..``endDate``;
- the same again with ``apiKeys: [the archive's key]`` when that key's UUID is known
  (``RUNWARE_ARCHIVE_API_KEY_UUID``; on the sandbox its own key's), so what other keys of
  the account spent is told apart;
- ``accountManagement`` / ``getDetails`` for the balance: ``balance`` is an object
  ``{amount, currency}`` in the SDKs' type maps (Runware/runware-python
  ``runware/types/task_map.py``, runware-typescript ``AccountManagementResult``) and a bare
  number in the example of runware.ai/docs/platform/account-management: both are read.

Each reply item's ``usage.timeseries.data[]`` rows carry ``date`` and ``spend``.
"""

import logging
import uuid
from datetime import datetime, timedelta, timezone

import requests

from archive import books, budgets, costs
from receiver import config as settings
from receiver.provider.client import provider_client

log = logging.getLogger(__name__)
SPAN = 30  # days one getUsageActivity may cover
BURN_DAYS = 7


def settings_of(app):
    """``(tz, threshold, balance floor, own key uuid, alert url)`` from the app's config."""
    cfg = app.config
    return (costs.zone(cfg["RUNWARE_ARCHIVE_TIMEZONE"]), cfg.get("RUNWARE_ARCHIVE_BOOKS_THRESHOLD"),
            cfg.get("RUNWARE_ARCHIVE_BALANCE_ALERT"),
            settings.api_key_uuid(cfg, app.extensions.get("sandbox_key")),
            cfg.get("RUNWARE_ARCHIVE_ALERT_URL") or None)


def spans(first, last):
    """``[(start, end)]``: ``first`` … ``last`` in spans of at most :data:`SPAN` days."""
    out, start = [], first
    while start <= last:
        end = min(start + timedelta(days=SPAN - 1), last)
        out.append((start, end))
        start = end + timedelta(days=1)
    return out


def questions(first, last, tz, own_key):
    """The task array to send, and ``{taskUUID: (kind, span)}`` to read the replies by."""
    tasks, asked = [], {}

    def ask(kind, **fields):
        task_uuid = str(uuid.uuid4())
        tasks.append({"taskType": "accountManagement", "taskUUID": task_uuid, **fields})
        asked[task_uuid] = kind

    for start, end in spans(first, last):
        window = {"operation": "getUsageActivity", "startDate": start.isoformat(),
                  "endDate": end.isoformat(), "groupBy": ["date"], "timezone": tz.key}
        ask("all", **window)
        if own_key:
            ask("own", **window, apiKeys=[own_key])
    ask("details", operation="getDetails")
    return tasks, asked


def read_replies(body, asked):
    """``(spend by date for all keys, for the archive's key, the getDetails item,
    problems)`` from the reply ``body``; a spend Runware did not answer is None."""
    spend, details, problems = {}, None, []
    for item in body.get("data") or []:
        kind = asked.get(item.get("taskUUID")) if isinstance(item, dict) else None
        if kind == "details":
            details = item
        elif kind is not None:
            rows = ((item.get("usage") or {}).get("timeseries") or {}).get("data") or []
            found = spend.setdefault(kind, {})
            for row in rows:
                if isinstance(row, dict) and isinstance(row.get("spend"), (int, float)):
                    found[str(row.get("date"))[:10]] = float(row["spend"])
    for error in body.get("errors") or []:
        if isinstance(error, dict):
            problems.append(f"{error.get('code')}: {error.get('message')}"[:300])
    return spend.get("all"), spend.get("own"), details, problems


def balance_of(details):
    """``(amount, currency)`` of a ``getDetails`` item: an object or a bare number."""
    value = (details or {}).get("balance")
    if isinstance(value, dict) and isinstance(value.get("amount"), (int, float)):
        return float(value["amount"]), value.get("currency") or "USD"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value), "USD"
    return None, None


def run(app, first=None, last=None, *, today=None):
    """One books pass over ``first`` … ``last`` (default: the last 7 local days); returns
    ``{"days": [Day], "account": {...}}`` after storing it and raising its alerts."""
    tz, threshold, floor, own_key, alert_url = settings_of(app)
    catalogue = app.extensions["catalogue"]
    today = today or costs.local_today(tz, datetime.now(timezone.utc))
    last = min(last or today, today)
    first = first or last - timedelta(days=BURN_DAYS - 1)
    asked_from = min(first, today - timedelta(days=BURN_DAYS - 1))
    provider = app.config["PROVIDER"]
    days = [books.archive_day(catalogue.conn, d, tz, provider) for d in books.dates(first, last)]
    tasks, asked = questions(asked_from, today, tz, own_key)
    try:
        status, body = provider_client(app).post(tasks)
    except requests.RequestException as exc:
        status, body = None, {"errors": [{"code": "unreachable", "message": type(exc).__name__}]}
    spend, own, details, problems = read_replies(body, asked)
    if status is not None and status >= 400 and not problems:
        problems.append(f"HTTP {status}")
    for day in days:
        if spend is not None:
            day.runware = spend.get(day.date, 0.0)
            day.own_key = None if own is None else own.get(day.date, 0.0)
    account = account_of(details, spend, today, tz, problems)
    books.store(catalogue, days, account)
    alert(catalogue, alert_url, books.alerts_for(days, account, threshold=threshold,
                                                 balance_floor=floor, today=today))
    return {"days": days, "account": account}


def account_of(details, spend, today, tz, problems):
    """The account row: balance, the trailing week's spend, the runway at that pace."""
    balance, currency = balance_of(details)
    burn = None
    if spend is not None:
        week = [(today - timedelta(days=i)).isoformat() for i in range(BURN_DAYS)]
        burn = books.usd(sum(spend.get(d, 0.0) for d in week))
    return {"timezone": tz.key, "balance": balance, "currency": currency,
            "burn_7_days": burn, "runway_days": books.runway(balance, burn),
            "problem": "; ".join(problems) or None}


def alert(catalogue, url, alerts):
    """Record the alerts not raised before and POST them (``budgets.send_alerts``)."""
    fresh = books.new_alerts(catalogue, alerts)
    return budgets.send_alerts(catalogue, url, fresh, note=books.note_alert)


def run_and_log(app):
    """The worker's daily pass: :func:`run`, summarised in the log."""
    result = run(app)
    off = [d for d in result["days"] if d.difference]
    log.info("books: %d day(s) checked, %d with a difference (%s); balance %s, %s days left%s",
             len(result["days"]), len(off),
             ", ".join(f"{d.date} ${d.difference:.4f}" for d in off) or "none",
             result["account"]["balance"], result["account"]["runway_days"],
             f"; {result['account']['problem']}" if result["account"]["problem"] else "")
    return result


def as_json(result):
    """What ``runware-archive books --json`` prints."""
    account = result["account"]
    return {"days": [d.as_json() for d in result["days"]], "balance": account["balance"],
            "runwayDays": account["runway_days"]}

