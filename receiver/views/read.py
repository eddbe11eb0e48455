"""``/read``: the parameters inside an image file (A1111's "PNG Info"), and the form to run
it again. A PNG, JPEG or WEBP is dropped on the page (or picked, without JavaScript: a file
input and a button); the server reads what :mod:`archive.image_params` finds (our
downloads' XMP and A1111 text, or A1111's own files), shows it, and offers the submit
form prefilled. The file is read in memory and never stored; the body is capped at
:data:`MAX_UPLOAD` before anything parses it (the CSRF check reads the form first, so the
cap is set ahead of it, :func:`cap_upload`)."""

from flask import Blueprint, abort, render_template, request

from archive import image_params
from protocol import schemas
from receiver import get_catalogue
from receiver.views.compose import FIELDS, to_form

bp = Blueprint("read", __name__)
MAX_UPLOAD = 20 * 1024 * 1024  # Runware's largest PNG is a few MB; a photo fits too
NOT_PARAMS = ("taskType", "taskUUID", "webhookURL", "uploadEndpoint", "includeCost")


@bp.before_app_request
def cap_upload():
    """The body limit of ``POST /read``, before any other hook reads its form."""
    if request.endpoint == "read.upload":
        request.max_content_length = MAX_UPLOAD


@bp.get("/read")
def page():
    """The drop zone and the file picker."""
    return render_template("read/index.html", reading=None)


@bp.post("/read")
def upload():
    """Read the uploaded file's parameters; 400 without a file, 415 for one that is not
    an image, 422 for an image that carries none (413 past the size limit)."""
    sent = request.files.get("image")
    if sent is None or not sent.filename and not sent.content_length:
        return failure(400, "Choose an image file (PNG, JPEG or WEBP) to read.")
    data = sent.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        abort(413)
    name = sent.filename or "the file"
    try:
        reading = image_params.read(data)
    except image_params.NotAnImage as exc:
        return failure(415, f"{name} is {exc}.")
    if not reading.found:
        return failure(422, f"{name} is a {reading.format} image of {reading.width}×"
                       f"{reading.height} that carries no generation parameters (no A1111 "
                       "“parameters” text, no EXIF comment, no runware-archive XMP).")
    values, notes = form_values(reading)
    known = reading.ids.get("taskUUID")
    task = get_catalogue().get_task(known) if known and len(known) <= 64 else None
    return render_template("read/index.html", reading=reading, values=values, notes=notes,
                           task=task, name=name, request_json=reading.request,
                           labels={key: field[2] for key, field in FIELDS.items()})


@bp.errorhandler(413)
def too_large(_):
    """The body passed :data:`MAX_UPLOAD` (refused while the form was read)."""
    return failure(413, f"The file is larger than {MAX_UPLOAD // (1024 * 1024)} MB: nothing"
                   " was read. Images Runware makes are a few MB.")


def failure(status, message):
    """The page again, with ``message`` in place of a reading."""
    return render_template("read/index.html", reading=None, error=message), status


def form_values(reading):
    """``(form values by field name, notes)``: the exact request when our XMP has it (with
    this image's seed, one image), else A1111's fields in Runware's names; what the form
    cannot take is left out with a note."""
    notes = []
    if reading.request is not None:
        params = {k: v for k, v in reading.request.items() if k not in NOT_PARAMS}
        values = to_form(params)
        if reading.ids.get("seed", "").isdigit():
            values["seed"] = reading.ids["seed"]
        values["numberResults"] = "1"
        return values, notes
    return from_a1111(reading.fields, notes), notes


def from_a1111(fields, notes):
    """Form values from A1111's parsed text (:func:`archive.image_params.parse_parameters`)."""
    values = {"positivePrompt": fields.get("prompt", ""), "numberResults": "1"}
    if fields.get("negative"):
        values["negativePrompt"] = fields["negative"]
    for key, name in (("Steps", "steps"), ("CFG scale", "CFGScale"), ("Seed", "seed")):
        if fields.get(key):
            values[name] = fields[key]
    width, _, height = (fields.get("Size") or "").partition("x")
    if width.isdigit() and height.isdigit():
        values["width"], values["height"] = width, height
    for key, name, allowed in (("Sampler", "scheduler", schemas.SCHEDULERS),
                               ("Model", "model", (schemas.MODEL_ID,)),
                               ("Acceleration", "acceleration", schemas.ACCELERATIONS)):
        value = fields.get(key)
        if value and value in allowed:
            values[name] = value
        elif value:
            notes.append(f"{key} “{value}” is not one this model takes: left out.")
    return {k: v for k, v in values.items() if k in FIELDS}
