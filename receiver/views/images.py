"""What is done to images from the gallery and the viewer: re-run one image with its
seed; star, unstar, delete (after a page showing them) or download as a zip several
picked at once. (Starring one is :func:`receiver.views.tasks.star`.)"""

import re

from flask import (
    Blueprint, Response, abort, current_app, flash, jsonify, redirect, render_template,
    request, url_for,
)

from archive import curation, metadata, picks
from protocol.schemas import ParameterError
from receiver import get_catalogue
from receiver import zipdownload
from receiver.rerun import RerunRefused, start_image
from receiver.storage import get_store
from receiver.views.auth import safe_next
from receiver.views.tasks import refuse_rerun, wants_json

bp = Blueprint("images", __name__)
UUID = re.compile(r"^[0-9a-fA-F-]{36}$")
MOST_PICKED = 500  # images one bulk action takes
BULK_ACTIONS = ("star", "unstar", "delete", "zip")


def load_image(image_uuid):
    """``(task, result)`` of ``image_uuid``, or 404."""
    pair = metadata.load(get_catalogue().conn, image_uuid) if UUID.match(image_uuid) else None
    if pair is None:
        abort(404, description=f"There is no image {image_uuid} in the catalogue.")
    return pair


@bp.post("/results/<image_uuid>/rerun")
def rerun_image(image_uuid):
    """A one-image task with this image's seed and its task's other parameters; on to
    it, or back to the task page saying why not (never left on this POST)."""
    task, result = load_image(image_uuid)
    anchor = f"#image-{image_uuid}"
    try:
        outcome = start_image(current_app, task, result)
    except (RerunRefused, ParameterError) as exc:
        return refuse_rerun(task["task_uuid"], exc.errors, anchor)
    if outcome.errors and get_catalogue().get_task(outcome.task_uuid) is None:
        return refuse_rerun(task["task_uuid"], outcome.errors, anchor)
    return redirect(url_for("tasks.detail", task_uuid=outcome.task_uuid), 303)


def picked():
    """The imageUUIDs the form names (``image``, repeated), or a 400 saying why not."""
    images = list(dict.fromkeys(request.form.getlist("image")))
    if not images:
        abort(400, description="image: pick at least one image")
    if len(images) > MOST_PICKED:
        abort(400, description=f"image: at most {MOST_PICKED} images at once")
    bad = next((i for i in images if not UUID.match(i)), None)
    if bad is not None:
        abort(400, description=f"image: {bad[:40]!r} is not an imageUUID")
    return images


def back():
    """Where the gallery was (``next``), for the answer's redirect."""
    return safe_next(request.form.get("next") or url_for("gallery.index"))


@bp.post("/results/bulk")
def bulk():
    """``action`` on the picked images: ``star`` / ``unstar`` (JSON for the page's
    script, else back to the gallery), ``delete`` (the page that asks first), ``zip``."""
    action, images = request.form.get("action", ""), picked()
    if action not in BULK_ACTIONS:
        abort(400, description=f"action: must be one of {', '.join(BULK_ACTIONS)}")
    if action in ("star", "unstar"):
        changed = curation.set_starred_many(get_catalogue(), images, action == "star")
        if wants_json():
            return jsonify(starred=action == "star", images=images, changed=changed)
        flash(f"{'Starred' if action == 'star' else 'Unstarred'} {changed} image(s).")
        return redirect(back(), 303)
    if action == "delete":
        return confirm_delete(images)
    return download_zip(images)


def confirm_delete(images):
    """The page showing what a deletion would take, with its one button."""
    conn = get_catalogue().conn
    cards = picks.cards_of(conn, images)
    if not cards:
        abort(404, description="None of the picked images is in the catalogue.")
    return render_template("gallery/delete.html", cards=cards, next=back(),
                           emptied=picks.tasks_emptied(conn, [c["image_uuid"] for c in cards]))


@bp.post("/results/delete")
def delete_many():
    """With ``confirm=yes``, delete the picked images (and a task they leave empty),
    then every file no other result or upload shares; else ask first."""
    images = picked()
    if request.form.get("confirm") != "yes":
        return confirm_delete(images)
    catalogue, store = get_catalogue(), get_store(current_app)
    hashes, emptied = curation.delete_results(catalogue, images)
    removed = sum(bool(store.delete_unreferenced(catalogue, sha)) for sha in hashes)
    flash(f"Deleted {len(images)} image(s){f' and {len(emptied)} task(s) left empty' if emptied else ''};"
          f" {removed} file(s) no other result shares were removed.")
    return redirect(back(), 303)


def download_zip(images):
    """The picked images, each with its sidecar, as one streamed zip."""
    conn = get_catalogue().conn
    pairs = [pair for pair in (metadata.load(conn, i) for i in images) if pair]
    if not pairs:
        abort(404, description="None of the picked images is in the catalogue.")
    response = Response(zipdownload.stream(pairs, get_store(current_app)),
                        mimetype=zipdownload.ZIP_TYPE)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="runware-archive-{len(pairs)}-images.zip"')
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
