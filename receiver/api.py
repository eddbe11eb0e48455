"""The JSON API, every route under ``/api/``: submit tasks, read them back, page through
them, re-run them, estimate one, see what they cost."""

import json

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import InternalServerError

from archive.parsing import parse_int
from receiver.views import compose
from receiver.views import dashboard
from receiver.views.params import label
from receiver import rerun as reruns
from receiver import get_catalogue
from receiver.files import file_links
from receiver.views.pages import error_page
from protocol.schemas import ParameterError, load_submission, warnings_for
from receiver.provider.submit import submit_in_app
from archive import states

bp = Blueprint("api", __name__, url_prefix="/api")
MAX_PAGE = 200


def error_response(status, errors):
    """``{"errors": [{"parameter", "message"}]}`` with ``status``."""
    return jsonify(errors=errors), status


@bp.post("/tasks")
def create():
    """Validate and submit one task; 202 once the provider acknowledged it.

    Parameters Runware accepts but will not act on (``ttl`` without URL output, say) are
    no error: the answer lists them under ``warnings``, only when there are any.
    """
    payload = request.get_json(silent=True)
    if payload is None:
        return error_response(400, [{"parameter": "body",
                                     "message": "the body must be a JSON object"}])
    try:
        params = load_submission(payload)
    except ParameterError as exc:
        return error_response(422, exc.errors)
    warnings = warnings_for(params)
    outcome = submit_in_app(current_app, params)
    body = {"taskUUID": outcome.task_uuid, "status": outcome.status}
    if outcome.errors:
        body["errors"] = outcome.errors
    if warnings:
        body["warnings"] = warnings
    return jsonify(body), outcome.http_status


@bp.get("/tasks/<task_uuid>")
def detail(task_uuid):
    """One task with its parameters and every result."""
    task = get_catalogue().get_task(task_uuid)
    if task is None:
        return error_response(404, [{"parameter": "taskUUID", "message": "no such task"}])
    return jsonify(task_json(task, with_results=True))


@bp.get("/tasks")
def index():
    """Tasks newest first; ``limit`` (≤ 200) and the ``next`` cursor of the last page."""
    errors, values = [], {}
    for name, default in (("limit", "50"), ("cursor", None)):
        text = request.args.get(name) or default
        try:  # both are ids or counts: at least 1, and within SQLite's integers
            values[name] = parse_int(text, minimum=1) if text else None
        except ValueError as exc:
            errors.append({"parameter": name, "message": str(exc)})
    if errors:
        return error_response(400, errors)
    limit = min(values["limit"], MAX_PAGE)
    rows = get_catalogue().list_tasks(limit=limit + 1, before_id=values["cursor"])
    page = rows[:limit]
    nxt = str(page[-1]["id"]) if len(rows) > limit else None
    return jsonify(tasks=[task_json(t) for t in page], next=nxt)


@bp.post("/tasks/<task_uuid>/rerun")
def rerun(task_uuid):
    """Re-run a task: body ``{"mode": "exact" | "new-seed", ...parameter overrides}``;
    202 with the new ``taskUUID`` (and every one in ``taskUUIDs``)."""
    task = get_catalogue().get_task(task_uuid)
    if task is None:
        return error_response(404, [{"parameter": "taskUUID", "message": "no such task"}])
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return error_response(400, [{"parameter": "body", "message": "must be a JSON object"}])
    overrides = {k: v for k, v in body.items() if k != "mode"}
    try:
        outcomes = reruns.start(current_app, task, body.get("mode"), overrides)
    except reruns.RerunRefused as exc:
        return error_response(exc.status, exc.errors)
    except ParameterError as exc:
        return error_response(422, exc.errors)
    last = outcomes[-1]
    answer = {"taskUUID": outcomes[0].task_uuid, "status": outcomes[0].status,
              "taskUUIDs": [o.task_uuid for o in outcomes], "parentTaskUUID": task_uuid,
              "rerunMode": body["mode"]}
    if last.errors:
        answer["errors"] = last.errors
        return jsonify(answer), last.http_status
    return jsonify(answer), 202


@bp.get("/estimate")
def estimate():
    """``{"estimate", "perImage"}`` in USD for ``width``, ``height``, ``steps``,
    ``numberResults`` (Runware's defaults for any left out); values the submission's
    rules refuse get no price: 400 with their errors, each with its form ``label``."""
    args = {name: request.args[name] for name in compose.ESTIMATED if name in request.args}
    params, bad, _ = compose.read_form(args)
    total, each, errors = compose.estimate(params, bad)
    if errors:
        return error_response(400, [dict(e, label=label(e["parameter"])) for e in errors])
    return jsonify(estimate=total, perImage=each, currency="USD")


@bp.get("/costs")
def cost_summary():
    """Costs of a date range grouped by ``group``, as JSON or (``format=csv``) the ledger."""
    return dashboard.api_costs()


def task_json(task, *, with_results=False):
    """A task row as the API shows it (Runware's field names; no token anywhere)."""
    out = {
        "taskUUID": task["task_uuid"], "status": task["status"],
        "provider": task["provider"], "sandbox": task["provider"] == "sandbox",
        "model": task["model"], "positivePrompt": task["positive_prompt"],
        "params": json.loads(task["params"]), "parentTaskUUID": task["parent_task_uuid"],
        "rerunMode": task["rerun_mode"], "label": task["label"],
        "numberResults": task["number_results"],
        "resultsReceived": task["results_received"], "cost": task["cost"],
        "costMissing": task["cost_missing"], "estimate": task["estimate"],
        "createdAt": task["created_at"], "acknowledgedAt": task["acknowledged_at"],
        "completedAt": task["completed_at"], "updatedAt": task["updated_at"],
        "errorCode": task["error_code"], "errorMessage": task["error_message"],
        "errorsReceived": task["errors_received"],
    }
    if with_results:
        out["results"] = [result_json(r) for r in task["results"]]
        out["imagesFailed"] = sum(1 for f in task["failures"] if f["image_uuid"])
        out["failures"] = [{"imageUUID": f["image_uuid"], "code": f["code"],
                            "message": f["message"], "receivedAt": f["received_at"]}
                           for f in task["failures"]]
    return out


def result_json(result):
    """One result as the API shows it."""
    return {
        "imageUUID": result["image_uuid"], "seed": result["seed"], "cost": result["cost"],
        "imageURL": result["image_url"], "outputType": result["output_kind"],
        "NSFWContent": None if result["nsfw"] is None else bool(result["nsfw"]),
        "receivedAt": result["received_at"],
        "archived": result["archive_state"] == states.ARCHIVED,
        "archiveState": result["archive_state"], "archiveError": result["archive_error"],
        "sha256": result["sha256"], "starred": bool(result["starred"]),
        "archivedAt": result["archived_at"], "width": result["img_width"],
        "height": result["img_height"], "fileSize": result["file_size"],
        **file_links(result),
    }


@bp.errorhandler(405)
def method_not_allowed(exc):
    """Runware-style errors for the API, not an HTML page."""
    return error_response(405, [{"parameter": "method", "message": str(exc)}])


@bp.app_errorhandler(InternalServerError)
def internal_error(exc):
    """The net under every ``/api/`` path, this blueprint's and the few other blueprints
    serve there (``/api/estimate``, re-runs): a bug answers JSON like any API error, not
    an HTML page (Flask has logged the traceback already). Elsewhere the app's error page.
    Bad input is refused before it gets here; this is for what nobody foresaw."""
    if not request.path.startswith(bp.url_prefix + "/"):
        return error_page(exc)
    return error_response(500, [{"parameter": "request", "message": (
        "the server failed on this request (a bug, not your input); its log says more")}])
