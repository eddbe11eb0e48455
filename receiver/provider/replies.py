"""Provider replies that carry results: a sync reply to a submission and a ``getResponse``
reply, both taken apart here and stored through the one ingest, by the same
:func:`ingest_delivery` as the webhook's deliveries.

``getResponse`` answers a task it has no record of with ``taskNotFound``, ``taskExpired`` or
``taskFailedOrNotFound`` (runware-api.md §5). Those say nothing about the generation: the
task may still be queued, its record may have aged out, or it may have run and been
delivered. They are never stored as the task's failure; the caller decides what silence
means (reconcile keeps asking until its window closes, then calls the task lost).
Runware/runware-python ``runware/errors.py`` files ``taskFailedOrNotFound`` under "not found",
apart from its provider (generation) failures.
"""

import json
from dataclasses import dataclass, field

import requests
from marshmallow import ValidationError

from archive.catalogue import INLINE_FIELDS, elide_inline
from protocol.deliveries import parse_delivery
from protocol.schemas import validation_errors

NO_INFORMATION = frozenset({"taskNotFound", "taskExpired", "taskFailedOrNotFound"})


def ask(client, task_type, task_uuids, problems):
    """One POST asking ``task_type`` (``getResponse``, ``getTaskDetails``) of each task:
    ``(status, body)``, or None with the reason added to ``problems`` when the provider
    cannot be reached (a pass goes on with what it has)."""
    try:
        return client.post([{"taskType": task_type, "taskUUID": uuid} for uuid in task_uuids])
    except requests.RequestException as exc:
        problems.append(f"{task_type}: provider unreachable ({type(exc).__name__})")
        return None


@dataclass
class ReplyOutcome:
    """What one reply brought for one task."""

    new_results: int = 0
    new_errors: int = 0
    processing: int = 0
    not_found: bool = False  # the reply said only "no information" about the task
    problem: str = ""  # set when the task's items could not be read at all
    status: str = ""  # the task's status after the ingest, if anything was stored
    unreadable: list = field(default_factory=list)


def items_for(body, task_uuid, *, unnamed_too=False):
    """``{"data": [...], "errors": [...]}``: the reply's items about ``task_uuid``.

    :param unnamed_too: also take items that name no task (the reply to a request about
        this task alone).
    """
    wanted = (task_uuid, None) if unnamed_too else (task_uuid,)
    mine = {}
    for key in ("data", "errors"):
        value = body.get(key)
        items = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
        mine[key] = [item for item in items if isinstance(item, dict)
                     and _named(item) in wanted]
    legacy = body.get("error")  # the singular form, an object or a list of them
    for item in [legacy] if isinstance(legacy, dict) else legacy if isinstance(
            legacy, list) else []:
        if isinstance(item, dict) and _named(item) in wanted:
            mine["errors"].append(item)
    return mine


def _named(item):
    value = item.get("taskUUID")
    return value.lower() if isinstance(value, str) else value


def ingest_delivery(catalogue, task_uuid, delivery, *, source, body=None, columns_for=None,
                    **sender):
    """Store a parsed delivery (:func:`protocol.deliveries.parse_delivery`) for
    ``task_uuid`` through the one ingest, logged with :func:`loggable` and with the items
    passed over said in the log's reason; the :class:`archive.catalogue.IngestResult`.

    :param body: the bytes as received, when they are all about this task (a webhook's).
    :param sender: ``remote_addr`` and ``content_type``, for the log.
    """
    return catalogue.ingest(
        task_uuid, results=delivery.results, errors=delivery.errors, source=source,
        raw_body=loggable(body, delivery), received_size=received_size(body, delivery),
        columns_for=columns_for, progress=len(delivery.processing),
        note=unreadable_note(delivery), **sender)


def has_inline(delivery):
    """Whether a result of ``delivery`` carries its image inline (base64 or data URI)."""
    return any(field in r for r in delivery.results for field in INLINE_FIELDS)


def received_size(body, delivery):
    """The size of what arrived where :func:`loggable` keeps something smaller (inline
    image data elided), else None: a webhook's bytes, or, for a reply that held other
    tasks' items too, this task's items as JSON with their image data."""
    if not has_inline(delivery):
        return None
    if body is not None:
        return len(body)
    return len(json.dumps({"data": delivery.results, "errors": delivery.errors}).encode())


def loggable(body, delivery):
    """What the delivery log keeps of an accepted delivery: ``body`` as received, not
    serialised again (the webhook's hot path), unless it carries inline image data, which
    is elided (the image store keeps the image). Without a body (a reply's holds other
    tasks' items too), the delivery's own items, elided likewise."""
    if body is not None and not has_inline(delivery):
        return body
    return json.dumps({"data": [elide_inline(r) for r in delivery.results],
                       "errors": delivery.errors})


def unreadable_note(delivery):
    """The delivery log's reason for an accepted delivery with items passed over."""
    if not delivery.unreadable:
        return None
    said = "; ".join(f"{u['item']}: {u['reason']}" for u in delivery.unreadable[:5])
    return f"{len(delivery.unreadable)} item(s) could not be read and were passed over: {said}"


def ingest_reply(catalogue, task_uuid, body, *, source, columns_for=None, unnamed_too=False):
    """Store what ``body`` (a reply's JSON) says about ``task_uuid``; a
    :class:`ReplyOutcome`. Items that cannot be read are logged as a rejection."""
    mine = items_for(body, task_uuid, unnamed_too=unnamed_too)
    found = [e for e in mine["errors"] if e.get("code") not in NO_INFORMATION]
    result = ReplyOutcome(not_found=bool(mine["errors"]) and not found and not mine["data"])
    mine["errors"] = found
    if not (mine["data"] or mine["errors"]):
        return result
    try:
        delivery = parse_delivery(mine)
    except ValidationError as exc:
        result.problem = f"invalid {source} item: {validation_errors(exc)[:3]}"
        catalogue.log_rejection(source=source, reason=result.problem, status_code=502,
                                task_uuid=task_uuid, raw_body=json.dumps(mine))
        return result
    result.processing, result.unreadable = len(delivery.processing), delivery.unreadable
    if not (delivery.results or delivery.errors):
        return result
    outcome = ingest_delivery(catalogue, task_uuid, delivery, source=source,
                              columns_for=columns_for)
    result.new_results, result.new_errors = len(outcome.new), outcome.errors
    result.status = outcome.status
    return result
