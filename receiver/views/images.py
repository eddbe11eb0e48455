"""What is done to single images from the gallery and the viewer: re-run one image with
its seed. (Starring is :func:`receiver.views.tasks.star`.)"""

from flask import Blueprint, abort, current_app, redirect, url_for

from archive import metadata
from protocol.schemas import ParameterError
from receiver import get_catalogue
from receiver.rerun import RerunRefused, start_image
from receiver.views.tasks import refuse_rerun

bp = Blueprint("images", __name__)


def load_image(image_uuid):
    """``(task, result)`` of ``image_uuid``, or 404."""
    pair = metadata.load(get_catalogue().conn, image_uuid) if len(image_uuid) <= 64 else None
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
