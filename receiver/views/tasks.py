"""The task page ``/tasks/<uuid>`` and what can be done from it: re-run, star, delete."""

import json

from flask import (
    Blueprint, abort, current_app, flash, get_flashed_messages, jsonify, redirect,
    render_template, request, url_for,
)

from archive import curation, delivery_log, lineage, verdict
from receiver import get_catalogue
from receiver.views.auth import safe_next
from receiver.views import params
from receiver.views.pages import image_store
from receiver.rerun import RerunRefused, start
from protocol.schemas import ParameterError
from archive import states

bp = Blueprint("tasks", __name__)
FINAL_STATUSES = states.FINAL
RERUN_REFUSED = "rerun-refused"  # the flash category of a refused re-run's errors


def load(task_uuid):
    """The task with its results, or 404."""
    task = get_catalogue().get_task(task_uuid)
    if task is None:
        abort(404, description=f"There is no task {task_uuid} in the catalogue.")
    return task


def judge_children(catalogue, task, kids, hash_of):
    """``{child uuid: [Verdict]}`` for the re-runs of ``task``."""
    out = {}
    for kid in kids:
        full = catalogue.get_task(kid["task_uuid"])
        out[kid["task_uuid"]] = verdict.verdicts(full["results"], task["results"], hash_of)
    return out


def page_context(task):
    """Everything the task page shows about ``task``."""
    catalogue = get_catalogue()
    conn = catalogue.conn
    hash_of = verdict.HashCache(catalogue, image_store().open)
    parent = catalogue.get_task(task["parent_task_uuid"]) if task["parent_task_uuid"] else None
    kids = lineage.children(conn, task["task_uuid"])
    deliveries, _ = delivery_log.deliveries(conn, task_uuid=task["task_uuid"], limit=200)
    return {
        "task": task, "params": json.loads(task["params"]), "parent": parent,
        "request_json": json.dumps(json.loads(task["params"]), indent=2, sort_keys=True),
        "verdicts": verdict.verdicts(task["results"], parent["results"], hash_of)
        if parent else [],
        "changes": lineage.changes(parent["params"], task["params"]) if parent else [],
        "children": kids, "child_verdicts": judge_children(catalogue, task, kids, hash_of),
        "variants": lineage.seed_variants(conn, task),
        "timeline": lineage.grouped(lineage.timeline(task, deliveries)),
        "param_groups": parameter_groups(task),
        "live": task["status"] not in FINAL_STATUSES,
        "threshold": verdict.VISUAL_THRESHOLD,
    }


def parameter_groups(task):
    """The parameter table's groups (:func:`receiver.views.params.grouped_rows`), with the
    provider and the label, which are the archive's facts rather than parameters, under
    Delivery."""
    groups = params.grouped_rows(json.loads(task["params"]))
    facts = [params.Row("Provider", "", task["provider"] + (
        " (the local stand-in: nothing charged)" if task["provider"] == "sandbox" else ""))]
    if task["label"]:
        facts.append(params.Row("Label", "label", task["label"]))
    delivery = next((rows for group, rows in groups if group == "Delivery"), None)
    if delivery is None:
        groups.append(("Delivery", facts))
    else:
        delivery.extend(facts)
    return groups


@bp.get("/tasks/<task_uuid>")
def detail(task_uuid):
    """Every image, parameter, delivery and relative of one task (and why a re-run just
    asked for was refused: :func:`refuse_rerun`)."""
    refused = [e for m in get_flashed_messages(category_filter=[RERUN_REFUSED])
               for e in json.loads(m)]
    return render_template("tasks/detail.html", rerun_errors=refused,
                           **page_context(load(task_uuid)))


def refuse_rerun(task_uuid, errors, anchor=""):
    """Post-redirect-get for a refused re-run: back to the task page, which says why, so
    reloading it never sends the POST again."""
    flash(json.dumps(errors), RERUN_REFUSED)
    return redirect(url_for("tasks.detail", task_uuid=task_uuid) + anchor, 303)


@bp.post("/tasks/<task_uuid>/rerun")
def rerun(task_uuid):
    """**Re-run exact** or **New seed** from a button; on to the new task."""
    task = load(task_uuid)
    mode = request.form.get("mode", "")
    try:
        outcomes = start(current_app, task, mode)
    except (RerunRefused, ParameterError) as exc:
        return refuse_rerun(task_uuid, exc.errors)
    failed = outcomes[-1] if outcomes[-1].errors else None
    if failed and get_catalogue().get_task(failed.task_uuid) is None:
        # Refused before anything was recorded (a budget): say so on the task page.
        return refuse_rerun(task_uuid, failed.errors)
    if len(outcomes) > 1:
        flash(f"Re-ran each of the {len(outcomes)} images as its own task "
              "(the task was sent without a seed).")
    return redirect(url_for("tasks.detail", task_uuid=outcomes[0].task_uuid), 303)


@bp.post("/results/<image_uuid>/star")
def star(image_uuid):
    """Star (``starred=1``) or unstar (``starred=0``) one image."""
    starred = request.form.get("starred") == "1"
    if not curation.set_starred(get_catalogue(), image_uuid, starred):
        abort(404, description=f"There is no image {image_uuid} in the catalogue.")
    if wants_json():  # the page's script stars without a reload
        return jsonify(imageUUID=image_uuid, starred=starred)
    return redirect(safe_next(request.form.get("next")), 303)


def wants_json():
    """True when a script asked for JSON (``Accept: application/json``) over a page."""
    return request.accept_mimetypes.best == "application/json"


@bp.route("/tasks/<task_uuid>/delete", methods=["GET", "POST"])
def delete(task_uuid):
    """Ask first (GET, or a POST without ``confirm=yes``); then delete the task, its
    results and every file no other result shares."""
    task = load(task_uuid)
    if request.method == "GET" or request.form.get("confirm") != "yes":
        return render_template("tasks/delete.html", task=task)
    hashes = curation.delete_task(get_catalogue(), task_uuid) or []
    store = image_store()
    removed = sum(bool(store.delete_unreferenced(get_catalogue(), sha)) for sha in hashes)
    flash(f"Deleted task {task_uuid} with its {len(task['results'])} image(s); "
          f"{removed} file(s) no other task shares were removed.")
    return redirect(url_for("gallery.index"), 303)
