"""The sandbox's answers about its books: ``accountManagement`` (``getDetails``,
``getUsageActivity``) and ``getTaskDetails``, in the shapes Runware's SDK type maps give.

Sources (cited again in the README):

- ``accountManagement``: Runware/runware-typescript ``src/types/task-map.ts``
  (``AccountManagementParams``: ``operation`` one of ``getDetails``, ``getUsageActivity``,
  ``getUsagePerformance``, ``getUsageErrors``; ``startDate``/``endDate`` inclusive, the span
  at most 30 days; ``models``, ``apiKeys`` filters; ``groupBy`` of ``date``, ``model``,
  ``apiKey``; ``timezone``, "IANA timezone name used for day-bucketing".
  ``AccountManagementResult``: ``organizationName``, ``organizationUUID``, ``balance``
  ``{amount, freeBalance, currency}``, ``team[]``, ``apiKeys[]`` ``{apiKey (partially
  masked), name, description, enabled, createdAt, lastUsedAt, requests}``, ``usage``
  ``{today, last7Days, last30Days, total: {credits, requests}}`` and, per ``groupBy``,
  ``usage.timeseries`` / ``usage.model`` / ``usage.apiKey``: ``{data: [{date, model,
  modelName, apiKey, count, spend, ...}], meta: {totalRequests, totalResults, totalSpend,
  avgDailySpend, projectedSpend, ...}}``); Runware/runware-python
  ``runware/types/task_map.py`` (``AccountManagementResult``, the same top-level fields);
  runware.ai/docs/platform/account-management (``getDetails`` only, its example giving
  ``balance`` as a bare number: the type maps, newer, give the object, which the sandbox
  sends; the archive reads both).
- ``getTaskDetails``: runware.ai/docs/platform/task-details and both type maps
  (``GetTaskDetailsResult``: ``taskType``, ``taskUUID``, ``request`` (the original array),
  ``response`` (the original envelope: ``data`` when the task succeeded, ``errors`` when
  it failed)).

Inferred, because no source says: the date format (``YYYY-MM-DD``), the window when no
dates are sent (the 30 days ending today), Runware's default day cut when no ``timezone``
is sent (UTC here), a dense ``timeseries`` (every day of the window, zero days included),
the error codes of a bad request (Runware's ``invalidX`` / ``missingX`` pattern), and, for
a task that had results, that ``response`` holds every result (not the async
acknowledgement).
"""

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sandbox import ledger
from sandbox.delivery import error_item, result_item
from protocol.errors import runware_error, text_or_none

OPERATIONS = ("getDetails", "getUsageActivity")
GROUPS = {"date": "timeseries", "model": "model", "apiKey": "apiKey"}
MAX_SPAN_DAYS = 30
ORGANIZATION_UUID = "5a4d3c2b-1e0f-4a9b-8c7d-6e5f4a3b2c1d"
DAY = 86400


class BadRequest(ValueError):
    """A parameter the sandbox refuses, as ``(code, parameter, message)``."""


def account_management(entry, books, data, errors):
    """Answer one ``accountManagement`` task into ``data`` or ``errors``.

    :param books: ``{"conn", "now", "balance", "keys": [(uuid, name, masked)]}``.
    """
    task_uuid = text_or_none(entry.get("taskUUID"))
    try:
        operation = entry.get("operation")
        if operation not in OPERATIONS:
            raise BadRequest("invalidOperation", "operation",
                             f"operation must be one of {', '.join(OPERATIONS)} in the sandbox")
        head = {"taskType": "accountManagement", "taskUUID": task_uuid, "operation": operation}
        if operation == "getDetails":
            data.append({**head, **details(books)})
        else:
            data.append({**head, **usage_activity(entry, books)})
    except BadRequest as exc:
        code, parameter, message = exc.args
        errors.append((400, runware_error(code, message, task_type="accountManagement",
                                          task_uuid=task_uuid, parameter=parameter)))


def details(books):
    """``getDetails``: the organisation, its balance, its keys and rolling usage totals."""
    conn, now = books["conn"], books["now"]
    spent_ever, _ = ledger.spent(conn, now)
    used = ledger.requests_by_key(conn, now)
    midnight = now - now % DAY  # "today" is the UTC day (inferred)
    usage = {}
    for name, since in (("today", midnight), ("last7Days", now - 7 * DAY),
                        ("last30Days", now - 30 * DAY), ("total", None)):
        credits, requests = ledger.spent(conn, now, since)
        usage[name] = {"credits": credits, "requests": requests}
    return {
        "organizationUUID": ORGANIZATION_UUID, "organizationName": "Runware Archive sandbox",
        "balance": {"amount": round(books["balance"] - spent_ever, 10), "freeBalance": 0,
                    "currency": "USD"},
        "team": [],
        "apiKeys": [_key(uuid_, name, masked, used.get(uuid_)) for uuid_, name, masked
                    in books["keys"]],
        "usage": usage,
    }


def _key(_uuid, name, masked, used):
    requests, last = used or (0, None)
    out = {"apiKey": masked, "name": name, "description": f"the sandbox's {name}",
           "enabled": True, "createdAt": "2026-01-01T00:00:00Z", "requests": requests}
    if last is not None:
        out["lastUsedAt"] = _iso(last)
    return out


def usage_activity(entry, books):
    """``getUsageActivity``: requests and spend over ``[startDate, endDate]``, bucketed by
    day in ``timezone``, one breakdown per ``groupBy``."""
    zone = _zone(entry.get("timezone"))
    today = datetime.fromtimestamp(books["now"], zone).date()
    end = _day(entry, "endDate", today)
    start = _day(entry, "startDate", end - timedelta(days=MAX_SPAN_DAYS - 1))
    if end < start:
        raise BadRequest("invalidEndDate", "endDate", "endDate must be on or after startDate")
    if (end - start).days + 1 > MAX_SPAN_DAYS:
        raise BadRequest("invalidEndDate", "endDate",
                         f"the span from startDate to endDate must not exceed {MAX_SPAN_DAYS} days")
    groups = _groups(entry.get("groupBy", ["date"]))
    stop = min(_midnight(end + timedelta(days=1), zone), books["now"] + 1e-6)
    charges = ledger.charges_between(
        books["conn"], _midnight(start, zone), stop,
        api_keys=_strings(entry, "apiKeys"), models=_strings(entry, "models"))
    for charge in charges:
        charge["date"] = datetime.fromtimestamp(charge["at"], zone).date().isoformat()
    days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    usage = {GROUPS[g]: breakdown(charges, g, days if g == "date" else None) for g in groups}
    return {"startDate": start.isoformat(), "endDate": end.isoformat(), "usage": usage}


def breakdown(charges, group, keys=None):
    """``{"data": rows, "meta": totals}`` of ``charges`` grouped by ``group``; ``keys``
    (the window's dates) makes the rows dense."""
    rows = {key: [] for key in keys or ()}
    for charge in charges:
        rows.setdefault(charge[group], []).append(charge)
    data = []
    for key, found in rows.items():
        row = {group: key, "count": len({c["taskUUID"] for c in found}),
               "spend": round(sum(c["cost"] for c in found), 10)}
        if group == "model":
            row["modelName"] = key
        data.append(row)
    total = round(sum(c["cost"] for c in charges), 10)
    span = len(keys) if keys else 1
    meta = {"totalRequests": len({c["taskUUID"] for c in charges}), "totalResults": len(charges),
            "totalSpend": total, "avgDailySpend": round(total / span, 10),
            "projectedSpend": round(total / span * 30, 10)}
    return {"data": data, "meta": meta}


def unknown_task(task_uuid, task_type):
    """``(status, error)`` for a lookup (``getResponse``, ``getTaskDetails``) of a task the
    sandbox does not know, or of none: ``taskNotFound`` (404) or ``missingTaskUUID``."""
    return (404 if task_uuid else 400, runware_error(
        "taskNotFound" if task_uuid else "missingTaskUUID",
        "No task with this taskUUID." if task_uuid else "taskUUID is required.",
        task_type=task_type, task_uuid=task_uuid, parameter="taskUUID"))


def task_details(entry, state, data, errors):
    """``getTaskDetails``: the task's request as sent and the response it produced (its
    finished results in ``data``, its failed generations in ``errors``)."""
    task_uuid = text_or_none(entry.get("taskUUID"))
    record = state.task(task_uuid) if task_uuid else None
    if record is None:
        errors.append(unknown_task(task_uuid, "getTaskDetails"))
        return
    now, response = state.clock(), {"data": []}
    for item in state.items(task_uuid):
        if now < item.ready_at:
            continue
        if item.outcome == "success":
            response["data"].append(result_item(state, record, item))
        else:
            response.setdefault("errors", []).append(error_item(record, item))
    data.append({"taskType": "getTaskDetails", "taskUUID": task_uuid,
                 "request": [record.task], "response": response})


def _zone(name):
    if name is None:
        return timezone.utc
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest("invalidTimezone", "timezone",
                         "timezone must be an IANA time zone name") from None


def _day(entry, name, default):
    value = entry.get(name)
    if value is None:
        return default
    try:
        return date.fromisoformat(value[:10]) if isinstance(value, str) else _bad_day(name)
    except ValueError:
        return _bad_day(name)


def _bad_day(name):
    raise BadRequest(f"invalid{name[0].upper()}{name[1:]}", name, f"{name} must be YYYY-MM-DD")


def _groups(value):
    if not isinstance(value, list) or not value or any(g not in GROUPS for g in value):
        raise BadRequest("invalidGroupBy", "groupBy",
                         f"groupBy must be a list of {', '.join(GROUPS)}")
    return list(dict.fromkeys(value))


def _strings(entry, name):
    value = entry.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"invalid{name[0].upper()}{name[1:]}", name,
                         f"{name} must be a list of strings")
    return value


def _midnight(day, zone):
    return datetime.combine(day, time(), zone).timestamp()


def _iso(moment):
    return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
