"""Submitting ``imageInference`` tasks: build the task, record it, POST it, record the answer.

The task row is written *before* the POST, so a webhook that overtakes the provider's
reply (the sandbox answers that fast) always finds its task.
"""

import json
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from marshmallow import ValidationError

from archive import budgets, pricing
from archive.catalogue import elide_inline
from receiver.delivery_schemas import parse_delivery
from receiver.schemas import DEFAULT_STEPS, validation_errors
from receiver import archiving
from receiver import config as settings
from receiver.tokens import make_token

WEBHOOK_ROUTE = "/webhooks/runware/{task_uuid}"
UPLOAD_ROUTE = "/uploads/{task_uuid}"  # receiver/files.py; matching rule in archive/uploads.py
RETRY_STATUSES = (429, 500, 502, 503, 504)
SERVICE_FIELDS = ("label",)  # accepted by our API, stored here, never sent to Runware

# Runware field -> tasks column, for the fields the catalogue indexes and filters on.
COLUMNS = {
    "model": "model", "positivePrompt": "positive_prompt",
    "negativePrompt": "negative_prompt", "width": "width", "height": "height",
    "steps": "steps", "CFGScale": "cfg_scale", "scheduler": "scheduler", "seed": "seed",
    "numberResults": "number_results", "outputType": "output_type",
    "outputFormat": "output_format", "deliveryMethod": "delivery_method", "ttl": "ttl",
}


class ProviderClient:
    """POSTs task arrays to Runware's REST endpoint (or the sandbox) through one session.

    Retries connection errors, 429 and 5xx with exponential backoff, honouring
    ``Retry-After``. Retrying a POST is safe here because every retry carries the same
    taskUUIDs, which the provider deduplicates, so a retry cannot charge twice.
    """

    def __init__(self, url, api_key, *, timeout=120.0, retries=4, backoff=0.5,
                 session=None):
        self.url = url
        self.timeout = (5.0, timeout)
        self.session = session or requests.Session()
        retry = Retry(
            total=retries, connect=retries, read=retries, status=retries,
            status_forcelist=RETRY_STATUSES, allowed_methods=None,
            backoff_factor=backoff, respect_retry_after_header=True,
            raise_on_status=False,
        )
        self.session.mount("http://", HTTPAdapter(max_retries=retry))
        self.session.mount("https://", HTTPAdapter(max_retries=retry))
        self.session.headers["Authorization"] = f"Bearer {api_key}"

    def post(self, tasks):
        """POST ``tasks`` (a list); returns ``(status_code, body)`` with body a dict.

        :raises requests.RequestException: the provider could not be reached.
        """
        response = self.session.post(self.url, json=tasks, timeout=self.timeout)
        try:
            body = response.json()
        except ValueError:
            body = {"errors": [{"code": "invalidResponse",
                                "message": f"HTTP {response.status_code}, not JSON"}]}
        if not isinstance(body, dict):
            body = {"errors": [{"code": "invalidResponse", "message": "not a JSON object"}]}
        return response.status_code, body


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
    """The task as sent: the user's parameters, ``includeCost``, our ``webhookURL`` and,
    when given, our ``uploadEndpoint``."""
    task = {k: v for k, v in params.items() if k not in SERVICE_FIELDS}
    task["includeCost"] = True
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
           prepare=None, parent=None,
           rerun_mode=None, estimate=None, budget=None):
    """Record and send one validated task; returns a :class:`Submission`.

    :param params: the output of ``schemas.load_submission`` (``taskUUID`` set).
    :param uploads: also send our ``uploadEndpoint`` (``RUNWARE_ARCHIVE_UPLOADS``).
    :param prepare: the ingest hook that archives inline results of a sync reply.
    :param estimate: USD stored as the task's estimate; default :func:`estimate_of`.
    :param budget: an ``archive.budgets.Budget``; a task past a limit is refused (402,
        ``budgetExceeded``), recording and sending nothing.
    """
    task = build_task(params, webhook=webhook_url(
        params["taskUUID"], public_url=public_url, secret=secret), upload=upload_url(
        params["taskUUID"], public_url=public_url, secret=secret) if uploads else None)
    task_uuid = task["taskUUID"]
    estimate = estimate_of(task) if estimate is None else estimate
    refused, crossings = budgets.admit(catalogue, task_row(
        task, provider=provider, parent=parent, rerun_mode=rerun_mode,
        label=params.get("label"), estimate=estimate,
    ), estimate, budget)
    if refused:
        return Submission(task_uuid, "refused", [{"code": "budgetExceeded",
                                                  "message": refused}], 402)
    if crossings:
        budgets.send_alerts(catalogue, budget.alert_url, crossings)
    try:
        status_code, body = client.post([task])
    except requests.RequestException as exc:
        message = f"could not reach the provider at {client.url}: {type(exc).__name__}"
        catalogue.mark_failed(task_uuid, code="providerUnreachable", message=message)
        return Submission(task_uuid, "error", [{"code": "providerUnreachable",
                                                "message": message}], 502)
    return record_reply(catalogue, task_uuid, status_code, body, prepare=prepare)


def record_reply(catalogue, task_uuid, status_code, body, *, prepare=None):
    """Record the provider's reply to our POST: its errors, its ack, inline results."""
    errors = [e for e in _as_list(body.get("errors")) if _is_for(e, task_uuid)]
    data = [d for d in _as_list(body.get("data")) if _is_for(d, task_uuid)]
    if errors or status_code >= 400:
        errors = errors or [{"code": f"http{status_code}",
                             "message": f"the provider answered HTTP {status_code}"}]
        first = errors[0]
        catalogue.mark_failed(task_uuid, code=first.get("code") or "providerError",
                              message=first.get("message") or "", ack=body)
        return Submission(task_uuid, "error", errors,
                          402 if status_code == 402 else 502)
    catalogue.mark_acknowledged(task_uuid, ack=_ack_only(body))
    results = [d for d in data if "imageUUID" in d]
    if results:
        try:
            delivery = parse_delivery({"data": results})
        except ValidationError as exc:
            errors = validation_errors(exc)
            catalogue.mark_failed(task_uuid, code="invalidResponse", message=str(errors))
            return Submission(task_uuid, "error", errors, 502)
        outcome = catalogue.ingest(task_uuid, results=delivery.results,
                                   errors=delivery.errors, source="sync",
                                   raw_body=json.dumps({"data": [elide_inline(r) for r in results]}),
                                   prepare=prepare)
        return Submission(task_uuid, outcome.status)
    return Submission(task_uuid, catalogue.get_task(task_uuid)["status"])


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


def provider_client(app):
    """The app's one :class:`ProviderClient`, made on first use (the sandbox's address
    is known only once the server is listening)."""
    client = app.extensions.get("provider_client")
    if client is None:
        cfg = app.config
        client = ProviderClient(
            settings.provider_url(cfg), cfg.get("RUNWARE_API_KEY") or "sandbox",
            timeout=cfg["RUNWARE_ARCHIVE_SUBMIT_TIMEOUT"],
            retries=cfg["RUNWARE_ARCHIVE_SUBMIT_RETRIES"],
            backoff=cfg["RUNWARE_ARCHIVE_SUBMIT_BACKOFF"],
        )
        app.extensions["provider_client"] = client
    return client


def submit_in_app(app, params, *, request_root=None, **kwargs):
    """:func:`submit` with the app's catalogue, client, secret and addresses."""
    return submit(
        params, catalogue=app.extensions["catalogue"], client=provider_client(app),
        uploads=archiving.uploads_enabled(app.config), prepare=archiving.inline_prepare(app),
        secret=app.extensions["webhook_secret"],
        public_url=settings.public_url(app.config, request_root),
        provider=app.config["PROVIDER"],
        budget=budgets.Budget.from_settings(app.config), **kwargs,
    )
