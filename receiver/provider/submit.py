"""Submitting ``imageInference`` tasks: build the task, record it, POST it, record the answer.

The task row is written *before* the POST, so a webhook that overtakes the provider's
reply (the sandbox answers that fast) always finds its task.

Every task carries our ``webhookURL`` and, unless the user asked for ``sync``,
``deliveryMethod: "async"``: Runware's own code never pairs a webhook with sync delivery
(Runware/sdk-python ``runware/base.py`` attaches ``webhookURL`` only to async requests;
Runware/runware-skills ``integrate-with-runware/SKILL.md`` sends the two together), and
``getResponse``, which reconciliation relies on, is documented for async tasks.
"""

import sqlite3
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import requests

from archive import budgets, pricing
from receiver import storage
from receiver import config as settings
from receiver.config import UPLOAD_ROUTE, WEBHOOK_ROUTE
from receiver.provider.client import provider_client
from receiver.provider.replies import ingest_reply
from protocol.schemas import DEFAULT_STEPS
from receiver.provider.tokens import make_token

SERVICE_FIELDS = ("label",)  # accepted by our API, stored here, never sent to Runware
CONFLICT = "conflictTaskUUID"

# Runware field -> tasks column, for the fields the catalogue indexes and filters on.
COLUMNS = {
    "model": "model", "positivePrompt": "positive_prompt",
    "negativePrompt": "negative_prompt", "width": "width", "height": "height",
    "steps": "steps", "CFGScale": "cfg_scale", "scheduler": "scheduler", "seed": "seed",
    "numberResults": "number_results", "outputType": "output_type",
    "outputFormat": "output_format", "deliveryMethod": "delivery_method", "ttl": "ttl",
}


@dataclass
class Submission:
    """What became of one submitted task."""

    task_uuid: str
    status: str
    errors: list = field(default_factory=list)
    http_status: int = 202


def webhook_url(task_uuid, *, public_url, secret):
    """The task's ``webhookURL``: public base + route + its per-task token."""
    token = make_token(task_uuid, secret=secret)
    return f"{public_url}{WEBHOOK_ROUTE.format(task_uuid=task_uuid)}?token={token}"


def without_query(url):
    """``url`` minus its query string: how a URL holding a token is stored."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def upload_url(task_uuid, *, public_url, secret):
    """The task's ``uploadEndpoint``: where the provider PUTs each image's bytes."""
    token = make_token(task_uuid, secret=secret, purpose="upload")
    return f"{public_url}{UPLOAD_ROUTE.format(task_uuid=task_uuid)}?token={token}"


def build_task(params, *, webhook, upload=None):
    """The task as sent: the user's parameters, ``includeCost``, our ``webhookURL``, async
    delivery unless the user chose sync, and, when given, our ``uploadEndpoint``."""
    task = {k: v for k, v in params.items() if k not in SERVICE_FIELDS}
    task["includeCost"] = True
    task.setdefault("deliveryMethod", "async")
    task["webhookURL"] = webhook
    if upload:
        task["uploadEndpoint"] = upload
    return task


def task_row(task, *, provider, parent=None, rerun_mode=None, label=None, estimate=None):
    """The ``tasks`` row for a task about to be sent (its token-free copy in ``params``)."""
    stored = dict(task, webhookURL=without_query(task["webhookURL"]))
    if "uploadEndpoint" in task:
        stored["uploadEndpoint"] = without_query(task["uploadEndpoint"])
    row = {column: task.get(name) for name, column in COLUMNS.items()}
    row["number_results"] = task.get("numberResults", 1)
    row.update(
        task_uuid=task["taskUUID"], params=stored, provider=provider,
        parent_task_uuid=parent, rerun_mode=rerun_mode, label=label, estimate=estimate,
    )
    return row


def estimate_of(task):
    """The task's estimated USD (``archive.pricing``), as shown to the user."""
    return pricing.estimate_cost(task.get("width", 1024), task.get("height", 1024),
                                 task.get("steps", DEFAULT_STEPS), task.get("numberResults", 1))


def submit(params, *, catalogue, client, secret, public_url, provider, uploads=False,
           columns_for=None, parent=None,
           rerun_mode=None, estimate=None, budget=None, key=None):
    """Record and send one validated task; returns a :class:`Submission`.

    :param params: the output of ``schemas.load_submission`` (``taskUUID`` set).
    :param uploads: also send an ``uploadEndpoint`` (``RUNWARE_ARCHIVE_UPLOADS``): ours, or
        the one a callable ``uploads(task_uuid)`` names (the bucket's presigned PUT).
    :param columns_for: the ingest hook that archives inline results of a sync reply.
    :param estimate: USD stored as the task's estimate; default :func:`estimate_of`.
    :param budget: an ``archive.budgets.Budget``; a task past a limit is refused (402,
        ``budgetExceeded``), recording and sending nothing.
    :param key: the client key (``archive.keys``) of a task from ``POST /v1``: recorded as
        the task's ``key_id``, its own budgets checked beside ``budget``.
    """
    upload = (uploads(params["taskUUID"]) if callable(uploads) else None) or upload_url(
        params["taskUUID"], public_url=public_url, secret=secret) if uploads else None
    task = build_task(params, webhook=webhook_url(
        params["taskUUID"], public_url=public_url, secret=secret), upload=upload)
    task_uuid = task["taskUUID"]
    estimate = estimate_of(task) if estimate is None else estimate
    row = task_row(task, provider=provider, parent=parent, rerun_mode=rerun_mode,
                   label=params.get("label"), estimate=estimate)
    if key is not None:
        row["key_id"] = key["id"]
    refusal, crossings = admit(catalogue, row, estimate, budget, key)
    if refusal:
        return refusal
    if crossings:
        budgets.send_alerts(catalogue, budget.alert_url, crossings)
    try:
        reply = client.post([task])
    except requests.RequestException as exc:
        message = f"could not reach the provider at {client.url}: {type(exc).__name__}"
        catalogue.mark_failed(task_uuid, code="providerUnreachable", message=message)
        return Submission(task_uuid, "error", [{"code": "providerUnreachable",
                                                "message": message}], 502)
    if reply.retried and conflict(reply.body, task_uuid):
        done = accepted_earlier(catalogue, client, task_uuid, columns_for=columns_for)
    else:
        done = record_reply(catalogue, task_uuid, reply.status, reply.body,
                            columns_for=columns_for)
    budgets.evaluate(catalogue, budget)  # a sync reply's (getResponse's) costs may cross
    return done


DUPLICATE = ("This taskUUID is in the archive already: it was submitted before. Nothing "
             "was sent; submit with a new taskUUID (or leave it out for one to be made).")


def admit(catalogue, row, estimate, budget, key=None):
    """Record the task ``row`` unless a budget refuses it or its taskUUID is taken (two
    submissions of one UUID race to the same unique index, and one loses); returns
    ``(refusing Submission or None, budget crossings to alert)``."""
    task_uuid = row["task_uuid"]
    try:
        refused, crossings = budgets.admit(catalogue, row, estimate, budget, key=key)
    except sqlite3.IntegrityError:
        return Submission(task_uuid, "refused", [{"code": CONFLICT, "parameter": "taskUUID",
                                                  "message": DUPLICATE}], 409), []
    if refused:
        return Submission(task_uuid, "refused", [{"code": "budgetExceeded",
                                                  "message": refused}], 402), []
    return None, crossings


def conflict(body, task_uuid):
    """Whether the reply refuses ``task_uuid`` as already used (``conflictTaskUUID``)."""
    return any(error.get("code") == CONFLICT
               for error in _as_list(body.get("errors")) + _as_list(body.get("error"))
               if _is_for(error, task_uuid))


def accepted_earlier(catalogue, client, task_uuid, *, columns_for=None):
    """A retry met ``conflictTaskUUID``: the first send got through and its reply was lost.

    Record the task as acknowledged and confirm with ``getResponse``, as Runware's own SDK
    does (Runware/sdk-python ``runware/base.py`` ``_retry_with_reconnect``); whatever it
    already has is stored. An unanswered ``getResponse`` changes nothing: the webhooks, or
    the next reconcile pass, bring the results.
    """
    catalogue.mark_acknowledged(task_uuid, ack={
        "data": [{"taskType": "imageInference", "taskUUID": task_uuid}],
        "note": "a retry was answered conflictTaskUUID: the first send got through"})
    try:
        status, body = client.post([{"taskType": "getResponse", "taskUUID": task_uuid}])
    except requests.RequestException:
        return Submission(task_uuid, "submitted")
    outcome = ingest_reply(catalogue, task_uuid, body, source="getResponse",
                           columns_for=columns_for, unnamed_too=True)
    return Submission(task_uuid, outcome.status or catalogue.get_task(task_uuid)["status"])


def record_reply(catalogue, task_uuid, status_code, body, *, columns_for=None):
    """Record the provider's reply to our POST: its refusal, or its ack and any results.

    A reply that carries results (a sync task) is stored through the one ingest even when
    it also carries errors: those are the failed images, not a refusal of the task.
    """
    if conflict(body, task_uuid):
        message = ("Runware already has a task with this taskUUID (conflictTaskUUID): it "
                   "was sent before, by this archive or by other code, and is not sent "
                   "again. Submit with a new taskUUID.")
        catalogue.mark_failed(task_uuid, code=CONFLICT, message=message, ack=body)
        return Submission(task_uuid, "error", [{"code": CONFLICT, "message": message,
                                                "parameter": "taskUUID"}], 409)
    errors = [e for e in _as_list(body.get("errors")) if _is_for(e, task_uuid)]
    results = [d for d in _as_list(body.get("data")) if _is_for(d, task_uuid)
               and "imageUUID" in d]
    if not results and (errors or status_code >= 400):
        errors = errors or [{"code": f"http{status_code}",
                             "message": f"the provider answered HTTP {status_code}"}]
        first = errors[0]
        catalogue.mark_failed(task_uuid, code=first.get("code") or "providerError",
                              message=first.get("message") or "", ack=body)
        return Submission(task_uuid, "error", errors,
                          402 if status_code == 402 else 502)
    catalogue.mark_acknowledged(task_uuid, ack=_ack_only(body))
    outcome = ingest_reply(catalogue, task_uuid, body, source="sync", columns_for=columns_for,
                           unnamed_too=True)
    if outcome.problem:
        catalogue.mark_failed(task_uuid, code="invalidResponse", message=outcome.problem)
        return Submission(task_uuid, "error", [{"code": "invalidResponse",
                                                "message": outcome.problem}], 502)
    return Submission(task_uuid, outcome.status or catalogue.get_task(task_uuid)["status"])


def _as_list(value):
    if isinstance(value, dict):
        return [value]
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _is_for(item, task_uuid):
    return item.get("taskUUID") in (None, task_uuid)


def _ack_only(body):
    """The reply without inline image data (which goes to the store, not the ack column)."""
    data = body.get("data")
    if not isinstance(data, list):
        return body
    return dict(body, data=[
        {k: v for k, v in d.items() if k not in ("imageBase64Data", "imageDataURI")}
        if isinstance(d, dict) else d for d in data
    ])


def submit_in_app(app, params, **kwargs):
    """:func:`submit` with the app's catalogue, client, secret and addresses; refused (503,
    nothing recorded or sent) when no configured URL can be the ``webhookURL``."""
    public_url = settings.public_url(app.config)
    if public_url is None:
        return Submission(params["taskUUID"], "refused", [{
            "code": "publicURLRequired", "message": settings.PUBLIC_URL_REQUIRED}], 503)
    return submit(
        params, catalogue=app.extensions["catalogue"], client=provider_client(app),
        uploads=storage.uploads_for(app), columns_for=storage.inline_columns(app),
        secret=app.extensions["webhook_secret"], public_url=public_url,
        provider=app.config["PROVIDER"],
        budget=budgets.current(app.extensions["catalogue"].conn, app.config), **kwargs,
    )
