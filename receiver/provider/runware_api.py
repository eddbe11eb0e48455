"""``POST /v1``: Runware's REST protocol, answered by the archive, so code written for
``https://api.runware.ai/v1`` archives everything it generates by changing one URL.

The client authenticates with one of the archive's client keys (:mod:`archive.keys`), as
Runware's own key: ``Authorization: Bearer <key>`` or a first element
``{"taskType": "authentication", "apiKey": ...}`` (runware-api.md §1). That key stays here:
the task goes on through :func:`receiver.provider.submit.submit_in_app`, with the archive's
own provider key (or the mounted sandbox's), its own per-task ``webhookURL``,
``deliveryMethod: "async"`` and ``includeCost``, recorded under the key (``key_id``, its
label) and checked against the key's budgets and the archive's in one admission.

What the client gets back is shaped as it asked:

- ``deliveryMethod: "async"`` (what runware-sdk sends unless told otherwise): the ack
  ``{"taskType", "taskUUID"}`` at once; ``getResponse`` then answers from the catalogue.
- ``sync`` (Runware's default when the field is absent, as the model page says): the
  request is held until the webhooks have brought every image into the catalogue, for at
  most ``RUNWARE_ARCHIVE_SUBMIT_TIMEOUT`` seconds (the archive's own wait for a provider),
  and answered with the stored results. Past that, it answers with what has arrived and
  nothing more: the task stays async upstream, so ``getResponse`` brings the rest.

A client's own ``webhookURL`` gets the stored results relayed, and its ``uploadEndpoint``
each archived image PUT (:mod:`archive.relay`, sent by the worker), when the URL's scheme,
host and port are among the key's relay hosts: the ack then comes at once, as Runware
answers a task with a webhook. A URL the key does not allow is not called; the task is
still archived and its ack says why, in ``"relay": {"webhookURL": "refused: ..."}``.

Only ``imageInference`` for TwinFlow (``protocol.schemas.MODEL_ID``) and ``getResponse``
for its tasks are answered here; every other task (other models, other task types,
``getResponse`` for tasks not recorded here) is forwarded by
:mod:`receiver.provider.forward`, and an array of those alone gets the upstream's own
answer, status and body.
"""

import time

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import RequestEntityTooLarge

from archive import keys, relay, states
from protocol.errors import (
    DOCS, runware_error, split_key, text_or_none, validation_error, envelope as runware_envelope,
)
from protocol.schemas import ParameterError, load_task
from receiver import get_catalogue
from receiver.provider import forward
from receiver.provider.submit import CONFLICT, submit_in_app

bp = Blueprint("runware_api", __name__)
MAX_BODY = 1024 * 1024  # a task array is a few kilobytes; prompts are at most 3,000 characters
MAX_TASKS = 20
POLL = 0.1  # seconds between looks at the catalogue while a sync request waits, at most
FIRST_POLL = 0.002  # the first wait, doubling up to POLL
# The client's own destinations: never sent upstream (the archive sets its own), relayed.
RELAYED = ("webhookURL", "uploadEndpoint")


def envelope(data, errors, status):
    """Runware's reply body (:func:`protocol.errors.envelope`) as a response with ``status``."""
    return jsonify(runware_envelope(data, errors)), status


@bp.post("/v1")
def endpoint():
    """A JSON array of tasks; each answered in ``data`` or ``errors``."""
    request.max_content_length = MAX_BODY
    tasks = request.get_json(silent=True, force=True)
    presented, tasks = api_key(tasks)
    key = keys.authenticate(get_catalogue().conn, presented)
    if key is None:
        return envelope([], [runware_error(
            "invalidApiKey", "Invalid API key: send one of this archive's client keys "
            "(runware-archive keys create) as 'Authorization: Bearer <key>' or in a first "
            "task {\"taskType\": \"authentication\", \"apiKey\": ...}.",
            task_type="authentication", parameter="apiKey")], 401)
    if not isinstance(tasks, list) or not tasks or len(tasks) > MAX_TASKS:
        return envelope([], [runware_error(
            "invalidRequestBody", f"The body must be a JSON array of 1 to {MAX_TASKS} task "
            "objects.", task_type=None)], 400)
    if all(forward.goes_upstream(entry, key, get_catalogue()) for entry in tasks):
        body, status = forward.relay(current_app, tasks, key)
        return jsonify(body), status
    data, errors, waiting = [], [], []
    for entry in tasks:
        answer(entry, key, data, errors, waiting)
    if waiting:
        data.extend(wait_for(waiting))
    status = 200 if data or not errors else max(status for status, _ in errors)
    return envelope(data, [error for _, error in errors], status)


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc):
    """Runware-style errors for a body over :data:`MAX_BODY`."""
    return envelope([], [runware_error("requestTooLarge", "The request body is over the "
                                       f"archive's limit of {MAX_BODY} bytes.",
                                       task_type=None)], 413)


def api_key(tasks):
    """The key (Bearer header, else a first ``authentication`` task) and the other tasks."""
    return split_key(request.headers.get("Authorization"), tasks)


def answer(entry, key, data, errors, waiting):
    """Answer one task into ``data``, ``errors`` (``(status, error)``) or ``waiting``
    (sync tasks whose results are waited for once the whole array is sent)."""
    task_type = entry.get("taskType") if isinstance(entry, dict) else None
    if forward.goes_upstream(entry, key, get_catalogue()):
        forward.answer_one(current_app, entry, key, data, errors)
    elif task_type == "imageInference":
        image_inference(entry, key, data, errors, waiting)
    else:
        get_response(entry, key, data, errors)


def image_inference(entry, key, data, errors, waiting):
    """Validate, then submit one task through the archive, recorded under ``key``."""
    try:
        task = load_task(entry)
    except ParameterError as exc:
        errors.extend((400, validation_error(error, entry)) for error in exc.errors)
        return
    task_uuid = task["taskUUID"]
    refused = not_supported_yet(task)
    if refused:
        errors.append((400, refused))
        return
    relayed = any(field in task for field in RELAYED)
    wanted = "async" if relayed else task.get("deliveryMethod", "sync")
    # submit sets includeCost and its own webhook; the client's are relayed, never sent on
    params = {k: v for k, v in task.items() if k != "includeCost" and k not in RELAYED}
    params.update(deliveryMethod="async", label=key["label"])
    outcome = submit_in_app(current_app, params, key=key)
    if outcome.status in ("refused", "error"):
        errors.extend(submission_errors(outcome, task_uuid))
    elif wanted == "sync":
        waiting.append(task_uuid)
    else:
        data.append(relayed_ack(task, key))


def relayed_ack(task, key):
    """The async ack; a client's own webhookURL and uploadEndpoint are watched for
    relaying when the key allows them, else the ack says why they will not be called."""
    ack = {"taskType": "imageInference", "taskUUID": task["taskUUID"]}
    allowed, refused = {}, {}
    for field in RELAYED:
        if field in task:
            why = relay.refusal(relay.hosts_of(key), task[field])
            (refused if why else allowed)[field] = f"refused: {why}" if why else task[field]
    if allowed:
        relay.watch(get_catalogue(), task["taskUUID"], key["id"],
                    allowed.get("webhookURL"), upload=allowed.get("uploadEndpoint"))
    if refused:
        ack["relay"] = refused
    return ack


def not_supported_yet(task):
    """The error for a valid task this endpoint cannot answer as asked yet, or None."""
    if task.get("outputType", "URL") != "URL":
        return runware_error(
            "unsupportedParameter", "The archive answers with the provider's imageURL only "
            "for now: leave outputType out or send \"URL\".", task_uuid=task["taskUUID"],
            parameter="outputType")
    return None


def submission_errors(outcome, task_uuid):
    """The refused or failed submission's errors, as Runware's, with their status. A
    taskUUID used before is 400 here, as Runware answers it (the archive's own API says
    409)."""
    return [(400 if error.get("code") == CONFLICT else outcome.http_status, runware_error(
        error.get("code") or "providerError", error.get("message") or "",
        task_uuid=task_uuid, parameter=error.get("parameter")))
        for error in outcome.errors or [{}]]


def wait_for(task_uuids):
    """The sync reply's items for ``task_uuids``, once each task's images are all in the
    catalogue or the wait (``RUNWARE_ARCHIVE_SUBMIT_TIMEOUT``) is over."""
    deadline = time.monotonic() + current_app.config["RUNWARE_ARCHIVE_SUBMIT_TIMEOUT"]
    catalogue = get_catalogue()
    pending, wait = list(task_uuids), FIRST_POLL
    while pending and time.monotonic() < deadline:
        pending = [t for t in pending if not finished(catalogue.get_task(t))]
        if pending:  # look often at first (a webhook lands in milliseconds), then less
            time.sleep(wait)
            wait = min(wait * 2, POLL)
    items = []
    for task_uuid in task_uuids:
        task = catalogue.get_task(task_uuid)
        items += [result_item(task_uuid, r) for r in task["results"]]
        items += [failed_item(task_uuid, f) for f in task["failures"] + task_failure(task)]
    return items


def task_failure(task):
    """``[failure]`` for a task that ended without a failure of its own images (the
    provider refused or could not be reached after the ack, or reconcile called it lost),
    so the client hears why instead of polling on; else ``[]``."""
    if task["failures"] or task["status"] not in (states.ERROR, states.LOST):
        return []
    return [{"image_uuid": None, "code": task["error_code"] or "providerError",
             "message": task["error_message"] or "the task failed"}]


def finished(task):
    """Whether every image of ``task`` has come (stored or failed), or it has ended."""
    failed = sum(1 for f in task["failures"] if f["image_uuid"])
    return task["status"] in states.FINAL or \
        len(task["results"]) + failed >= task["number_results"]


def get_response(entry, key, data, errors):
    """Every generation of one of this key's tasks, from the catalogue: results as
    ``success``, the images still to come as ``processing``, failures in ``errors``."""
    task_uuid = text_or_none(entry.get("taskUUID"))
    task = get_catalogue().get_task(task_uuid.lower()) if task_uuid else None
    if task is None or task["key_id"] != key["id"]:  # another key's task is not shown
        errors.append((404 if task_uuid else 400, runware_error(
            "taskNotFound" if task_uuid else "missingTaskUUID",
            "No task with this taskUUID." if task_uuid else "taskUUID is required.",
            task_type="getResponse", task_uuid=task_uuid, parameter="taskUUID")))
        return
    uuid = task["task_uuid"]
    data += [dict(result_item(uuid, r), status="success") for r in task["results"]]
    errors += [(200, dict(runware_error(f["code"] or "providerError", f["message"] or "",
                                        task_uuid=uuid, documentation=DOCS), status="error"))
               for f in task["failures"] + task_failure(task)]
    if task["status"] not in states.FINAL:
        missing = task["number_results"] - len(task["results"]) - sum(
            1 for f in task["failures"] if f["image_uuid"])
        data += [{"taskType": "imageInference", "taskUUID": uuid, "status": "processing"}
                 for _ in range(max(missing, 0))]


def result_item(task_uuid, result):
    """A stored result in Runware's result shape (runware-api.md §3). The cost is always
    there: the archive always asks for it, whether or not the client did."""
    item = {"taskType": "imageInference", "taskUUID": task_uuid,
            "imageUUID": result["image_uuid"], "imageURL": result["image_url"],
            "seed": result["seed"], "cost": result["cost"]}
    if result["nsfw"] is not None:
        item["NSFWContent"] = bool(result["nsfw"])
    return item


def relay_body(kind, task_uuid, row):
    """What a client's webhook is sent for a stored ``result`` or ``failure`` row: the
    object Runware's own webhook carries, the result alone (no key, no envelope)."""
    return result_item(task_uuid, row) if kind == "result" else failed_item(task_uuid, row)


def failed_item(task_uuid, failure):
    """A failed image as an item of a sync reply's ``data``, as Runware's SDKs read it."""
    item = {"taskType": "imageInference", "taskUUID": task_uuid, "status": "error",
            "error": {"code": failure["code"] or "providerError",
                      "message": failure["message"] or "", "documentation": DOCS}}
    if failure["image_uuid"]:
        item["imageUUID"] = failure["image_uuid"]
    return item
