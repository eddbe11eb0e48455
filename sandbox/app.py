"""The sandbox provider: a local Runware that speaks its REST protocol over real HTTP.

Mounted at ``/sandbox/v1`` when no ``RUNWARE_API_KEY`` is set (``runware-archive sandbox``
runs it alone). It follows ``../shared/runware-api.md``: a JSON array of tasks with a Bearer
key (its own key or the UI password, :mod:`sandbox.guard`; or a first
``authentication`` element), ``imageInference`` validated
by the receiver's own schema, ``getResponse``, ``accountManagement`` (``getDetails``,
``getUsageActivity``) and ``getTaskDetails`` from its own books (:mod:`sandbox.books`,
:mod:`sandbox.ledger`), Runware's ``errors`` objects and HTTP codes,
per-result webhooks with retries, ``uploadEndpoint`` PUTs, ``URL``/``base64Data``/``dataURI``
outputs served until ``ttl`` runs out, and a deterministic picture marked SANDBOX. The header
``X-Runware-Dry-Run: 1`` validates and prices without generating. State lives in
``sandbox.db`` beside the images (:mod:`sandbox.state`), shared by worker processes.

Where our first notes were wrong, it now does what Runware's own SDKs expect:

- a taskUUID seen before is answered ``conflictTaskUUID`` (HTTP 400, ``parameter:
  taskUUID``), never a replay of the first answer (Runware/sdk-python ``runware/base.py``
  reads that error on a retry as "the first send got through");
- ``deliveryMethod`` decides the reply alone: ``async`` (what our client sends with a
  webhook) is acknowledged at once, ``sync`` (Runware's default) answers with the results;
  a ``webhookURL`` gets one POST per result either way;
- a webhook carries the flat result object (Runware/runware-skills
  ``integrate-with-runware/SKILL.md``); a failed generation is an item
  ``{"status": "error", "error": {"code", "message"}, "taskUUID", "imageUUID"}`` (as
  Runware/runware-python's ``TestPerItemErrors`` has it); an errors-only reply is
  ``{"data": [], "errors": [...]}``; validation errors use Runware's codes
  (``invalidPositivePromptLength``, ``unknownParameter``, ``missingX``, ``invalidX``).

Faults on demand
----------------
``RUNWARE_SANDBOX_FAULTS`` (setting or environment) or the ``X-Sandbox-Faults`` header of
the submitting POST (the header wins; an empty header turns every fault off). Syntax:
comma-separated ``key=value``, e.g.
``duplicate=0.3,shuffle=1,delay=0.05,drop_first=2,submit_status=503:0.5,submit_429=0.2``.

=================  ==========================================================================
``duplicate=P``    each delivered webhook is sent once more, soon after, with probability P
``shuffle=P``      with probability P a task's results finish in a shuffled order
``delay=S``        each result of an async or webhook task finishes up to S seconds later
``drop_first=N``   the first N attempts of every webhook and upload are lost before they
                   are sent (logged as dropped), so the retry schedule has to deliver them
``drop=P``         each attempt of a webhook or upload is lost before it is sent with
                   probability P: ``drop=1`` loses every one, so only ``getResponse`` or
                   ``getTaskDetails`` can bring the results
``forget=S``       ``getResponse`` answers ``taskNotFound`` for a task accepted more than S
                   seconds ago (as if its record had aged out); ``getTaskDetails`` still
                   knows it
``submit_status``  ``CODE:P``: answer the submitting POST with HTTP CODE (429, 500, 502, 503,
                   504) with probability P, before anything is recorded; ``submit_CODE=P``
                   (e.g. ``submit_429=0.2``) says the same
``reply_lost=P``   accept the tasks, then answer 502 as if the reply were lost on the way, so
                   the client retries a POST that was already done (and meets
                   ``conflictTaskUUID``)
``submit_max=N``   at most N fault answers (both kinds above) to the same request body
                   (default 2), so a client that retries gets through
``fail=P``         each result fails with ``timeoutProvider`` with probability P
``wrapped=P``      the webhook body is ``{"data": [item]}`` instead of the flat item, with
                   probability P (the other shape sources describe)
``seed=N``         seeds every fault decision, so a run can be repeated exactly
=================  ==========================================================================

Timings: ``RUNWARE_SANDBOX_RESULT_DELAY`` (seconds between results finishing, 0.2),
``RUNWARE_SANDBOX_RETRY_BASE`` (0.25), ``RUNWARE_SANDBOX_RETRY_CAP`` (8),
``RUNWARE_SANDBOX_MAX_ATTEMPTS`` (10), ``RUNWARE_SANDBOX_WEBHOOK_TIMEOUT`` (5).
"""

import hashlib
import os

from flask import Blueprint, Flask, Response, current_app, jsonify, request, url_for
from werkzeug.exceptions import RequestEntityTooLarge

from archive.pricing import estimate_cost
from sandbox import books as sandbox_books
from sandbox import config
from sandbox import guard
from sandbox import ledger
from sandbox import render as sandbox_render
from sandbox.delivery import Deliverer, error_item, failed_item, result_item
from sandbox.faults import FaultSyntaxError, parse_faults
from sandbox.state import SandboxState, TaskConflict, extension
from protocol.errors import (
    runware_error, split_key, text_or_none, validation_error, envelope as runware_envelope,
)
from protocol.schemas import DEFAULT_STEPS, ParameterError, load_task

bp = Blueprint("sandbox", __name__)
DEFAULT_PORT = 5001
SUBMIT_FAULT_CODES = {429: "rateLimitExceeded", 500: "internalServerError", 502: "badGateway",
                      503: "serviceUnavailable", 504: "timeoutQueue"}


def init_app(app, *, url_prefix=config.PATH, own_callbacks=None):
    """Mount the sandbox on ``app`` at ``url_prefix``, its state in ``RUNWARE_SANDBOX_DIR``
    (else the data folder).

    :param own_callbacks: ``own_callbacks(field, task_uuid)`` -> the URLs (no query) of the
        mounting service's own ``webhookURL`` / ``uploadEndpoint`` route for that task: the
        only places, besides ``RUNWARE_SANDBOX_CALLBACKS``, the sandbox calls back.
    """
    state = SandboxState(guard.sandbox_folder(app.config))
    guard.sandbox_key(app.config)  # made now, so the client and the sandbox share it
    app.extensions["sandbox"] = state
    app.extensions["sandbox_deliverer"] = Deliverer(state, app.config)
    app.extensions["sandbox_callbacks"] = own_callbacks or (lambda field, task_uuid: ())
    app.register_blueprint(bp, url_prefix=url_prefix)


def state():
    """The app's :class:`SandboxState`."""
    return current_app.extensions["sandbox"]


def envelope(data, errors, status):
    """Runware's reply body (:func:`protocol.errors.envelope`) as a response with ``status``."""
    return jsonify(runware_envelope(data, errors)), status


@bp.before_request
def cap_body():
    """No body past ``RUNWARE_SANDBOX_MAX_BODY_BYTES`` is read (413). A chunked body is
    read up to one byte past the cap: that byte arriving means it is too big."""
    cap = current_app.config["RUNWARE_SANDBOX_MAX_BODY_BYTES"]
    request.max_content_length = cap + 1
    if request.method == "POST" and len(request.get_data()) > cap:
        raise RequestEntityTooLarge()


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc):
    """Runware-style errors for a body over the cap."""
    return envelope([], [runware_error(
        "requestTooLarge", "The request body is over the sandbox's size limit.",
        task_type=None)], 413)


@bp.post("")
def submit():
    """Take a JSON array of tasks; answer each in ``data`` or ``errors``."""
    tasks = request.get_json(silent=True)
    key, tasks = api_key(tasks)
    if not guard.key_accepted(key, current_app.config):
        return envelope([], [runware_error(
            "invalidApiKey", "Invalid API key. Send 'Authorization: Bearer <key>' or a first "
            "task {\"taskType\": \"authentication\", \"apiKey\": ...} with the sandbox's "
            "key (the file sandbox-key in its folder) or the UI password.",
            task_type="authentication", parameter="apiKey")], 401)
    if not isinstance(tasks, list) or not tasks:
        return envelope([], [runware_error(
            "invalidRequestBody", "The body must be a JSON array of task objects.",
            task_type=None)], 400)
    try:
        faults_text = request.headers.get("X-Sandbox-Faults",
                                          current_app.config["RUNWARE_SANDBOX_FAULTS"] or "")
        faults = parse_faults(faults_text)
    except FaultSyntaxError as exc:
        return envelope([], [runware_error("invalidSandboxFaults", str(exc), task_type=None,
                                           parameter="X-Sandbox-Faults")], 400)
    state().sweep()
    body_hash = hashlib.sha256(request.get_data()).hexdigest()
    refused = submit_fault(faults, body_hash, "submit") or over_capacity(tasks)
    if refused:
        return refused
    data, errors = [], []
    for entry in tasks:
        run_task(entry, faults, faults_text, data, errors, key=key)
    return submit_fault(faults, body_hash, "reply_lost") or envelope(
        data, [error for _, error in errors],
        200 if data else max(status for status, _ in errors))


def api_key(tasks):
    """The key (Bearer header, else a first ``authentication`` task) and the other tasks."""
    return split_key(request.headers.get("Authorization"), tasks)


def submit_fault(faults, body_hash, kind):
    """The 429/5xx answer the faults call for now (``submit`` or ``reply_lost``), or None."""
    def decide(count):
        rng = faults.rng(kind, body_hash, count)
        if kind == "reply_lost":
            return 502 if rng.random() < faults.reply_lost else None
        for code, probability in sorted(faults.submit.items()):
            if rng.random() < probability:
                return code
        return None

    if not (faults.submit if kind == "submit" else faults.reply_lost):
        return None
    status = state().charge_submit_fault(body_hash, faults.submit_max, decide)
    if status is None:
        return None
    return envelope([], [runware_error(
        SUBMIT_FAULT_CODES[status], f"Sandbox fault '{kind}': HTTP {status}; retry with "
        "backoff.", task_type=None)], status)


def over_capacity(tasks):
    """429, as Runware answers when its queue is full, for a request asking more pixels
    than one request may, or than the sandbox may still have to render; else None."""
    cfg = current_app.config
    asked = sum(guard.pixels(t) for t in tasks if isinstance(t, dict)
                and t.get("taskType") == "imageInference" and _sizes_are_ints(t)
                and guard.size_problem(t) is None)  # those are refused one by one
    if asked > cfg["RUNWARE_SANDBOX_MAX_REQUEST_PIXELS"]:
        reason = "this request asks for more pixels than one request may"
    elif asked and state().pending_pixels() + asked > cfg["RUNWARE_SANDBOX_MAX_PENDING_PIXELS"]:
        reason = "the sandbox's queue is full"
    else:
        return None
    response = envelope([], [runware_error(
        "rateLimitExceeded", f"Sandbox: {reason}; retry later or ask for fewer or smaller "
        "images.", task_type=None)], 429)
    response[0].headers["Retry-After"] = "5"
    return response


def _sizes_are_ints(task):
    return all(isinstance(task.get(k, 1), int) and not isinstance(task.get(k, 1), bool)
               for k in ("width", "height", "numberResults"))


def run_task(entry, faults, faults_text, data, errors, *, key):
    """Answer one task of the array into ``data`` and ``errors`` (``(status, error)``);
    ``key`` is the API key that sent it, whose account its generations are charged to."""
    task_type = entry.get("taskType") if isinstance(entry, dict) else None
    if task_type == "imageInference":
        image_inference(entry, faults, faults_text, data, errors, key=key)
    elif task_type == "getResponse":
        get_response(entry, data, errors)
    elif task_type == "accountManagement":
        sandbox_books.account_management(entry, books(), data, errors)
    elif task_type == "getTaskDetails":
        sandbox_books.task_details(entry, state(), data, errors)
    else:
        task_uuid = entry.get("taskUUID") if isinstance(entry, dict) else None
        errors.append((400, runware_error(
            "unsupportedTaskType", f"Task type {task_type!r} is not supported by the sandbox "
            "(imageInference, getResponse, accountManagement, getTaskDetails).", task_type=text_or_none(task_type),
            task_uuid=text_or_none(task_uuid), parameter="taskType")))


def books():
    """What :mod:`sandbox.books` reads: the state's connection, the clock, the starting
    balance and the keys the account has (its own, and the UI password when set), each
    as ``(uuid, name, masked)``: the key itself never leaves."""
    cfg = current_app.config
    own = guard.sandbox_key(cfg)
    keys = [(ledger.key_uuid(own, own), "sandbox key", f"…{own[-4:]}")]
    if cfg.get("RUNWARE_ARCHIVE_UI_PASSWORD"):
        keys.append((ledger.key_uuid(cfg["RUNWARE_ARCHIVE_UI_PASSWORD"], own), "UI password",
                     "********"))
    return {"conn": state().conn, "now": state().clock(),
            "balance": float(cfg["RUNWARE_SANDBOX_BALANCE"]), "keys": keys}


def image_inference(entry, faults, faults_text, data, errors, *, key):
    """Validate, then accept (or recognise) one ``imageInference`` task and answer it."""
    try:
        task = load_task(entry)
    except ParameterError as exc:
        errors.extend((400, validation_error(error, entry)) for error in exc.errors)
        return
    if request.headers.get("X-Runware-Dry-Run") == "1":
        data.append({"taskType": "imageInference", "taskUUID": task["taskUUID"],
                     "cost": estimate_cost(task["width"], task["height"],
                                           task.get("steps", DEFAULT_STEPS),
                                           task.get("numberResults", 1))})
        return
    refused = refuse_in_sandbox(task)
    if refused:
        errors.append((400, refused))
        return
    mode = task.get("deliveryMethod", "sync")
    images_url = url_for("sandbox.image", name="x", _external=True)[:-1]
    try:
        record = state().accept(
            task, faults=faults, faults_text=faults_text, images_url=images_url, mode=mode,
            result_delay=current_app.config["RUNWARE_SANDBOX_RESULT_DELAY"],
            api_key=ledger.key_uuid(key, guard.sandbox_key(current_app.config)))
    except TaskConflict:
        errors.append((400, runware_error(
            "conflictTaskUUID", f"A task with taskUUID {task['taskUUID']} was already "
            "submitted; use a new UUID v4 for each task.", task_uuid=task["taskUUID"],
            parameter="taskUUID")))
        return
    if "webhookURL" in task or "uploadEndpoint" in task:
        current_app.extensions["sandbox_deliverer"].start(record)
    if mode != "sync":
        data.append({"taskType": "imageInference", "taskUUID": record.task_uuid})
        return
    for item in state().items(record.task_uuid):
        if item.outcome == "success":
            data.append(result_item(state(), record, item))
        else:
            data.append(failed_item(record, item))


def refuse_in_sandbox(task):
    """The error for a valid task the sandbox will not run (a size it does not render, a
    callback it may not make), or None."""
    size = guard.size_problem(task)
    if size:
        name, message = size
        return runware_error(f"invalid{name[0].upper()}{name[1:]}", message,
                             task_uuid=task["taskUUID"], parameter=name)
    own = current_app.extensions["sandbox_callbacks"]
    for field in ("webhookURL", "uploadEndpoint"):
        if field in task and not guard.callback_allowed(
                task[field], current_app.config, own(field, task["taskUUID"])):
            return runware_error(
                "invalidCallbackURL", f"The sandbox calls back only this service's own "
                f"{field} route for this task, or a prefix in RUNWARE_SANDBOX_CALLBACKS.",
                task_uuid=task["taskUUID"], parameter=field)
    return None


def get_response(entry, data, errors):
    """Every generation of a task so far: processing, success (``data``) or error."""
    task_uuid = text_or_none(entry.get("taskUUID"))
    record = state().task(task_uuid) if task_uuid else None
    if record is not None and forgotten(record):
        record = None
    if record is None:
        errors.append(sandbox_books.unknown_task(task_uuid, "getResponse"))
        return
    now = state().clock()
    for item in state().items(task_uuid):
        if now < item.ready_at:
            span = max(item.ready_at - record.created_at, 1e-6)
            data.append({"taskType": "imageInference", "taskUUID": task_uuid,
                         "status": "processing",
                         "progress": int(100 * max(0.0, now - record.created_at) / span)})
        elif item.outcome == "success":
            data.append(result_item(state(), record, item, status="success"))
        else:
            errors.append((200, error_item(record, item)))



def forgotten(record):
    """Whether ``getResponse`` no longer knows the task (fault ``forget``: Runware's
    retention of ``getResponse`` is undocumented); ``getTaskDetails`` still does."""
    after = parse_faults(record.faults).forget
    return after is not None and state().clock() - record.created_at > after


@bp.get("/images/<name>")
def image(name):
    """A hosted image while its ``ttl`` lasts: 404 unknown or unfinished, 410 expired."""
    state().sweep()
    image_uuid, _, ext = name.partition(".")
    item = state().item(image_uuid.lower())
    record = state().task(item.task_uuid) if item else None
    now = state().clock()
    if record is None or item.outcome != "success" or ext != extension(record) \
            or now < item.ready_at:
        return jsonify(errors=[runware_error("imageNotFound", "No such image.",
                                             task_type=None)]), 404
    if now >= item.expires_at:
        return jsonify(errors=[runware_error("imageExpired", "This image URL has expired "
                                             "(ttl).", task_type=None)]), 410
    data = state().image_bytes(record, item)
    return Response(data, mimetype=sandbox_render.content_type(
        record.task.get("outputFormat")), headers={"Cache-Control": "private, max-age=60"})


def standalone_app(folder, environ=os.environ):
    """A Flask app with the sandbox alone, its state and key in ``folder``, its settings
    from ``environ``; it calls back only ``RUNWARE_SANDBOX_CALLBACKS``."""
    app = Flask(__name__)
    app.config.from_mapping(config.DEFAULTS)
    config.from_environment(app.config, environ)
    app.config["RUNWARE_ARCHIVE_DIR"] = app.config["RUNWARE_SANDBOX_DIR"] = folder
    os.makedirs(folder, exist_ok=True)
    init_app(app)
    return app
