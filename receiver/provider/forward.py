"""What ``POST /v1`` does not answer itself goes on to the upstream (Runware with
``RUNWARE_API_KEY``, else the mounted sandbox) as the client sent it, and the upstream's
answer comes back as it was sent: status and body.

- ``imageInference`` for a model other than TwinFlow: the archive holds no schema for it
  (only Runware knows each model's rules), so the task goes unchanged but for
  ``includeCost: true`` (the costs and budgets need it). Its ``webhookURL`` and
  ``deliveryMethod`` stay the client's: forcing the archive's own would change what the
  client gets back. It is recorded under the client key before it is sent (so the key's
  budgets are checked and a fast reply finds its task), and what comes back, a sync
  reply's results or the ``getResponse`` replies the client polls through ``/v1``, goes
  through the one ingest. A refusal leaves nothing behind: the upstream did not take the
  task, so the client may send the same taskUUID again, as it could at Runware.
- ``getResponse`` for a task the archive never recorded, or for such a forwarded task of
  the same key: forwarded, and a recorded task's results ingested.
- ``accountManagement`` and ``getTaskDetails``: refused (403), never forwarded. They read
  the account behind the archive's key (its balance, API keys, team, usage) and any past
  task's request and response (other clients' prompts, webhook URLs with their tokens):
  the account owner's business, which ``runware-archive books`` and reconcile ask for; a
  client key is not the owner.
- every other task type: forwarded, nothing recorded.

The client's key never goes on (the client sends the archive's own provider key), nor does
a further ``authentication`` element, which would carry it.
"""

import uuid
from dataclasses import dataclass

import requests

from archive import budgets, curation
from protocol.fields import has_lone_surrogate
from protocol.schemas import MODEL_ID
from receiver import storage
from receiver.provider import submit
from receiver.provider.client import provider_client
from receiver.provider.replies import ingest_reply

TEXT_COLUMNS = {"model", "positive_prompt", "negative_prompt", "scheduler", "output_type",
                "output_format", "delivery_method"}
SECRET_FIELDS = ("apiKey",)
URL_FIELDS = ("webhookURL", "uploadEndpoint")  # their query strings may hold a token
OWNER_ONLY = ("accountManagement", "getTaskDetails")
NOTHING_TO_SEND = {"code": "invalidRequestBody", "message": "The array holds no task besides "
                   "authentication elements."}


@dataclass
class Outgoing:
    """One task as it goes upstream; ``recorded`` names a catalogue task whose results it
    may bring (``kind``: ``inference`` for the task itself, ``poll`` for a getResponse)."""

    task: object
    recorded: str | None = None
    kind: str | None = None


def goes_upstream(entry, key, catalogue):
    """Whether ``entry`` is forwarded rather than answered here."""
    if not isinstance(entry, dict):
        return True
    task_type = entry.get("taskType")
    if task_type == "imageInference":
        return entry.get("model", MODEL_ID) != MODEL_ID  # the schema's default is TwinFlow
    if task_type == "getResponse":
        task = recorded_task(entry, catalogue)
        return task is None or (task["model"] != MODEL_ID and task["key_id"] == key["id"])
    return True


def recorded_task(entry, catalogue):
    """The catalogue's task the entry's taskUUID names, or None."""
    task_uuid = canonical(entry.get("taskUUID"))
    return catalogue.get_task(task_uuid) if task_uuid else None


def canonical(value):
    """A taskUUID as the catalogue keeps it (lower case), or None when it is not one."""
    try:
        return str(uuid.UUID(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def relay(app, tasks, key):
    """Forward every task of the array; ``(body, status)`` for the client: the upstream's
    own, unless a task was refused here (its budget, a taskUUID in use), then merged."""
    outgoing, refused = [], []
    for entry in tasks:
        prepare(app, entry, key, outgoing, refused)
    if not outgoing:  # all refused here, or only further authentication elements
        return merged([], refused or [(400, NOTHING_TO_SEND)])
    status, body = send(app, outgoing)
    if not refused:
        return body, status
    data, errors = list(_items(body, "data")), list(refused)
    errors += [(status if status >= 400 else 200, e) for e in _items(body, "errors")]
    return merged(data, errors)


def answer_one(app, entry, key, data, errors):
    """Forward one task of an array the archive answers in part itself, its answer
    merged into ``data`` and ``errors`` (``(status, error)``)."""
    outgoing, refused = [], []
    prepare(app, entry, key, outgoing, refused)
    errors.extend(refused)
    if outgoing:
        status, body = send(app, outgoing)
        data.extend(_items(body, "data"))
        errors.extend((status if status >= 400 else 200, e) for e in _items(body, "errors"))


def merged(data, errors):
    """An envelope of ``data`` and ``errors`` (``(status, error)``), as ``/v1`` answers."""
    body = {"data": data}
    if errors:
        body["errors"] = [e for _, e in errors]
    return body, 200 if data or not errors else max(s for s, _ in errors)


def prepare(app, entry, key, outgoing, refused):
    """Add ``entry`` to ``outgoing`` as it is sent (recorded first where it is archived),
    or its refusal to ``refused``; an ``authentication`` element is dropped."""
    task_type = entry.get("taskType") if isinstance(entry, dict) else None
    if task_type == "authentication":
        return
    if task_type in OWNER_ONLY:
        refused.append((403, {
            "code": "insufficientPermissions", "message": f"{task_type} reads the archive's "
            "own Runware account; a client key of the archive may not ask for it.",
            "taskType": task_type, "taskUUID": entry.get("taskUUID")}))
        return
    if task_type == "getResponse":
        task = recorded_task(entry, app.extensions["catalogue"])
        outgoing.append(Outgoing(entry, task and task["task_uuid"], "poll"))
        return
    if task_type != "imageInference":
        outgoing.append(Outgoing(entry))
        return
    task = dict(entry, includeCost=True)
    task_uuid = canonical(entry.get("taskUUID"))
    if task_uuid is None or not isinstance(entry.get("model"), str):
        outgoing.append(Outgoing(task))  # not a task Runware takes: its refusal says why
        return
    refusal = admit(app, task, task_uuid, key)
    if refusal:
        refused.append(refusal)
    else:
        outgoing.append(Outgoing(task, task_uuid, "inference"))


def admit(app, task, task_uuid, key):
    """Record the task under ``key`` in the budgets' admission (its price unknown here,
    it is refused only once a budget is spent); the ``(status, error)`` refusing it, or
    None."""
    catalogue = app.extensions["catalogue"]
    budget = budgets.current(catalogue.conn, app.config)
    refusal, crossings = submit.admit(catalogue, task_row(app, task, task_uuid, key), 0.0,
                                      budget, key)
    if crossings:
        budgets.send_alerts(catalogue, budget.alert_url, crossings)
    if refusal is None:
        return None
    error = refusal.errors[0]
    status = 400 if error["code"] == submit.CONFLICT else refusal.http_status
    return status, {"code": error["code"], "message": error["message"],
                    "parameter": error.get("parameter"), "taskType": "imageInference",
                    "taskUUID": task_uuid}


def task_row(app, task, task_uuid, key):
    """The ``tasks`` row of a forwarded task: the columns the gallery filters on, where
    the client sent them with a type the column holds, and its parameters minus secrets."""
    row = {column: _column_value(column, task.get(name))
           for name, column in submit.COLUMNS.items()}
    count = task.get("numberResults")
    row.update(task_uuid=task_uuid, model=task["model"],
               positive_prompt=row["positive_prompt"] or "",
               number_results=count if _is_int(count) and count > 0 else 1,
               params=stored_params(task), provider=app.config["PROVIDER"],
               label=key["label"], key_id=key["id"], estimate=None)
    return row


def stored_params(task):
    """The task as sent, minus what may be secret: an API key, a callback's query."""
    stored = {k: v for k, v in task.items() if k not in SECRET_FIELDS}
    for name in URL_FIELDS:
        if isinstance(stored.get(name), str):
            stored[name] = submit.without_query(stored[name])
    return stored


def _column_value(column, value):
    if column in TEXT_COLUMNS:
        return value if isinstance(value, str) and not has_lone_surrogate(value) else None
    if isinstance(value, float) or _is_int(value):
        return value
    return None


def _is_int(value):
    # SQLite's INTEGER holds signed 64 bits; a bool is not a count
    return isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63


def send(app, outgoing):
    """POST the tasks upstream and store what the reply says of the recorded ones;
    ``(status, body)``. Unreachable after the retries: 502 and Runware-style errors."""
    client = provider_client(app)
    catalogue = app.extensions["catalogue"]
    try:
        reply = client.post([o.task for o in outgoing])
    except requests.RequestException as exc:
        message = f"could not reach the provider at {client.url}: {type(exc).__name__}"
        for o in outgoing:
            if o.kind == "inference":
                catalogue.mark_failed(o.recorded, code="providerUnreachable", message=message)
        return 502, {"data": [], "errors": [unreachable(o.task, message) for o in outgoing]}
    earlier = [o.recorded for o in outgoing
               if o.recorded and settle(app, o, reply, alone=len(outgoing) == 1)]
    budgets.evaluate(catalogue, budgets.current(catalogue.conn, app.config))
    if earlier:
        return 200, acknowledged(reply.body, earlier)
    return reply.status, reply.body


def acknowledged(body, task_uuids):
    """``body`` with the ``conflictTaskUUID`` a retry met for each of ``task_uuids``
    turned into the ack the lost first reply carried: the task is running upstream (the
    client polls getResponse for it), and the conflict was the archive's own retry's."""
    errors = [e for e in _items(body, "errors") if not (
        e.get("code") == submit.CONFLICT and canonical(e.get("taskUUID")) in task_uuids)]
    data = _items(body, "data") + [{"taskType": "imageInference", "taskUUID": task_uuid}
                                   for task_uuid in task_uuids]
    return dict({"data": data}, **({"errors": errors} if errors else {}))


def unreachable(task, message):
    """A Runware-style error for one task that could not be sent."""
    fields = task if isinstance(task, dict) else {}
    error = {"code": "providerUnreachable", "message": message,
             "taskType": fields.get("taskType"), "taskUUID": fields.get("taskUUID")}
    return {k: v for k, v in error.items() if isinstance(v, str)}


def settle(app, outgoing, reply, *, alone):
    """Store what ``reply`` says of one recorded task: a poll's results through the one
    ingest; for the task itself, its refusal (the row goes), or its ack and results.
    True when a retry of the task met ``conflictTaskUUID``: its first send got through."""
    catalogue, task_uuid = app.extensions["catalogue"], outgoing.recorded
    columns_for = storage.inline_columns(app)
    if outgoing.kind == "poll":
        ingest_reply(catalogue, task_uuid, reply.body, source="getResponse",
                     columns_for=columns_for, unnamed_too=alone)
    elif reply.retried and submit.conflict(reply.body, task_uuid):
        submit.accepted_earlier(catalogue, provider_client(app), task_uuid,
                                columns_for=columns_for)
        return True
    elif refused(reply, task_uuid):
        curation.delete_task(catalogue, task_uuid)
    else:
        submit.record_reply(catalogue, task_uuid, reply.status, reply.body,
                            columns_for=columns_for)
    return False


def refused(reply, task_uuid):
    """Whether the upstream refused the task (a 4xx, or an error for it, and no ack or
    result): then it never ran there. A 5xx leaves that unknown, so the row stays."""
    def named(item):
        return canonical(item.get("taskUUID")) in (None, task_uuid)

    if reply.status >= 500 or any(named(item) for item in _items(reply.body, "data")):
        return False
    return reply.status >= 400 or any(named(e) for e in _items(reply.body, "errors"))


def _items(body, name):
    value = body.get(name)
    items = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
    return [item for item in items if isinstance(item, dict)]
