"""The submit form ``/new`` (and **Edit & re-run**, ``/new?from=<uuid>``), and the cost
estimate it shows, ``GET /api/estimate``.

Form fields are named by the parameter's dotted path (``acceleratorOptions.cacheEndStep``,
``lora[0].weight``), the same path the schema's errors use, so each error lands next to
its field. The form is validated by the same :func:`protocol.schemas.load_submission` as
the JSON API.

A task may carry any number of LoRAs, so their rows are not a fixed set of fields: the form
shows one row per LoRA of the values it is rendered with, numbered as they were, plus empty
ones (at least :data:`LORA_ROWS` rows, always one empty), and ``action=add-lora`` renders it
again with one more row (without JavaScript, the only way to add one).
"""

import math
import re

from flask import (
    Blueprint, current_app, flash, redirect, render_template, request, url_for,
)

from archive import lineage
from archive.pricing import cost_per_image, estimate_cost
from receiver import get_catalogue
from protocol import schemas as s
from receiver.rerun import base_params
from protocol.schemas import ParameterError, load_submission
from receiver.provider.submit import submit_in_app

bp = Blueprint("compose", __name__)
LORA_ROWS = 3  # rows on an empty form
# Row numbers up to 4 digits: a posted ``lora[99999999999].model`` must not make the page
# render that many rows (only the numbers present are rendered, but keep them sane).
_LORA_NAME = re.compile(r"^lora\[(\d{1,4})\]\.(model|weight|transformer)$")
BOOL_CHOICES = ("true", "false")

# (name, kind, label, choices); kinds: text, textarea, int, float, bool, choice
BASIC = [
    ("positivePrompt", "textarea", "Prompt", None),
    ("negativePrompt", "textarea", "Negative prompt", None),
    ("width", "int", "Width", None), ("height", "int", "Height", None),
    ("steps", "int", "Steps", None), ("CFGScale", "float", "CFG scale", None),
    ("seed", "int", "Seed", None), ("numberResults", "int", "Images", None),
    ("label", "text", "Label", None),
]
ADVANCED = {
    "Sampling": [("model", "choice", "Model", (s.MODEL_ID,)),
                 ("scheduler", "choice", "Scheduler", s.SCHEDULERS),
                 ("acceleration", "choice", "Acceleration", s.ACCELERATIONS)],
    "Accelerator options": [
        (f"acceleratorOptions.{name}", kind, name, None) for name, kind in (
            ("teaCache", "bool"), ("teaCacheDistance", "float"), ("fbCache", "bool"),
            ("fbCacheThreshold", "float"), ("dbCache", "bool"), ("dbCacheThreshold", "float"),
            ("dbCacheSkipInterval", "int"), ("cacheStartStep", "int"), ("cacheEndStep", "int"),
            ("cacheStartStepPercentage", "int"), ("cacheEndStepPercentage", "int"),
            ("cacheMaxConsecutiveSteps", "int"))],
    "LoRA": [],  # one row per LoRA: lora_fields()
    "Safety": [("safety.checkContent", "bool", "checkContent", None),
               ("safety.mode", "choice", "mode", s.SAFETY_MODES)],
    "Output": [("outputType", "choice", "outputType", s.OUTPUT_TYPES),
               ("outputFormat", "choice", "outputFormat", s.OUTPUT_FORMATS),
               ("outputQuality", "int", "outputQuality", None),
               ("ttl", "int", "ttl (seconds)", None),
               ("deliveryMethod", "choice", "deliveryMethod", s.DELIVERY_METHODS)],
}
FIELDS = {f[0]: f for f in BASIC + [f for group in ADVANCED.values() for f in group]}
_PATH = re.compile(r"^(\w+)(?:\[(\d+)\])?(?:\.(\w+))?$")


def lora_fields(row):
    """The three fields of LoRA row ``row``, as ``(name, kind, label, choices)``."""
    return [(f"lora[{row}].model", "text", "model (AIR)", None),
            (f"lora[{row}].weight", "float", "weight", None),
            (f"lora[{row}].transformer", "choice", "transformer", s.LORA_TRANSFORMERS)]


def lora_indexes(values):
    """The LoRA row numbers named in ``values`` (a form or a dict), in order."""
    found = {int(m[1]) for m in map(_LORA_NAME.match, values) if m}
    return sorted(found)


def lora_rows(values, extra=0):
    """The row numbers to render: those in ``values``, then new ones until there are at
    least :data:`LORA_ROWS` and one is empty, then ``extra`` more."""
    rows = lora_indexes(values)

    def filled(row):
        return any((values.get(f[0]) or "").strip() for f in lora_fields(row))

    while len(rows) < LORA_ROWS or all(filled(r) for r in rows):
        rows.append(rows[-1] + 1 if rows else 0)
    for _ in range(extra):
        rows.append(rows[-1] + 1)
    return rows


def all_fields(values):
    """Every field of the form as rendered with ``values``: the fixed ones and the LoRA
    rows in them."""
    fields = dict(FIELDS)
    for row in lora_indexes(values):
        fields.update((f[0], f) for f in lora_fields(row))
    return fields


def convert(kind, raw):
    """A form string as the JSON value of ``kind``. :raises ValueError: with the message."""
    if kind == "int":
        if not re.fullmatch(r"-?\d+", raw):
            raise ValueError("must be an integer")
        return int(raw)
    if kind == "float":
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("must be a number") from None
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return int(value) if value.is_integer() and "." not in raw else value
    if kind == "bool":
        if raw not in BOOL_CHOICES:
            raise ValueError("must be true or false")
        return raw == "true"
    return raw


def _put(params, name, value, lora_rows):
    top, index, leaf = _PATH.match(name).groups()
    if index is not None:
        row = lora_rows.setdefault(int(index), {})
        row[leaf] = value
    elif leaf:
        params.setdefault(top, {})[leaf] = value
    else:
        params[top] = value


def read_form(form):
    """``(params, errors)`` from the form; errors use the parameter paths of the schema,
    with LoRA rows numbered as on the form (empty rows are left out of ``lora``)."""
    params, errors, lora_rows = {}, [], {}
    for name, (_, kind, _, _) in all_fields(form).items():
        raw = (form.get(name) or "").strip()
        if raw == "":
            continue
        try:
            _put(params, name, convert(kind, raw), lora_rows)
        except ValueError as exc:
            errors.append({"parameter": name, "message": str(exc)})
    if lora_rows:
        params["lora"] = [lora_rows[i] for i in sorted(lora_rows)]
    return params, errors, sorted(lora_rows)


def form_errors(errors, lora_order):
    """``{field name or group: [messages]}``: ``lora[k]`` renumbered to its form row."""
    out = {}
    for error in errors:
        name = error["parameter"] or "task"
        match = re.match(r"^lora\[(\d+)\]", name)
        if match and int(match[1]) < len(lora_order):
            name = f"lora[{lora_order[int(match[1])]}]" + name[match.end():]
        if name not in FIELDS and not _LORA_NAME.match(name):
            name = _group_of(name)
        out.setdefault(name, []).append(error["message"])
    return out


def _group_of(name):
    top = re.split(r"[.\[]", name)[0]
    if top == "lora":
        return "LoRA"
    for group, members in ADVANCED.items():
        if any(re.split(r"[.\[]", f[0])[0] == top for f in members):
            return group
    return "task"


def to_form(params):
    """Form values (strings by field name) for a request's parameters."""
    values = {}
    loras = params.get("lora")
    names = list(FIELDS)
    for row in range(len(loras) if isinstance(loras, list) else 0):
        names += [f[0] for f in lora_fields(row)]
    for name in names:
        top, index, leaf = _PATH.match(name).groups()
        value = params.get(top)
        if index is not None:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else {}
        if leaf:
            value = value.get(leaf) if isinstance(value, dict) else None
        if value is not None:
            values[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return values


def estimate(params):
    """``(task estimate, per image)`` for parameters, with Runware's defaults (§2)."""
    width, height = params.get("width", s.DEFAULT_SIZE), params.get("height", s.DEFAULT_SIZE)
    steps, count = params.get("steps", s.DEFAULT_STEPS), params.get("numberResults", 1)
    try:
        return estimate_cost(width, height, steps, count), cost_per_image(width, height, steps)
    except (TypeError, ValueError, ArithmeticError):  # Decimal refuses a huge steps
        return None, None


def render_form(values, *, errors=None, parent=None, status=200, seed_note=False,
                extra_lora=0):
    """The form page with ``values``, errors by field, the estimate and the diff;
    ``extra_lora`` more empty LoRA rows than :func:`lora_rows` gives."""
    params, _, _ = read_form(values)
    total, each = estimate(params)
    parent_values = to_form(base_params(parent)) if parent else {}
    # What the schema fills in when left out is not a change.
    sent = {"taskType": "imageInference", "model": s.MODEL_ID, "width": s.DEFAULT_SIZE,
            "height": s.DEFAULT_SIZE, **params}
    diff = lineage.changes(base_params(parent), sent) if parent else []
    errors = errors or {}
    advanced = dict(ADVANCED, LoRA=[f for row in lora_rows(values, extra_lora)
                                    for f in lora_fields(row)])
    open_groups = {group for group, members in advanced.items() if group in errors or any(
        values.get(f[0]) or f[0] in errors for f in members)}
    if extra_lora:
        open_groups.add("LoRA")
    return render_template(
        "compose/new.html", values=values, errors=errors, basic=BASIC, advanced=advanced,
        open_groups=open_groups, parent=parent, parent_values=parent_values, diff=diff,
        estimate=total, per_image=each, seed_note=seed_note,
    ), status


@bp.get("/new")
def new():
    """An empty form, or with ``?from=<uuid>`` the form of **Edit & re-run**."""
    parent = None
    if request.args.get("from"):
        parent = get_catalogue().get_task(request.args["from"])
    if parent is None:
        return render_form({"width": "1024", "height": "1024", "steps": "4",
                            "numberResults": "1"})
    values = to_form(base_params(parent))
    from_result = "seed" not in values and bool(parent["results"]) \
        and parent["results"][0]["seed"] is not None
    if from_result:
        values["seed"] = str(parent["results"][0]["seed"])
    return render_form(values, parent=parent, seed_note=from_result)


@bp.post("/new")
def create():
    """Preview (estimate and diff) or send; errors come back next to their fields, notes
    on parameters without effect (:func:`protocol.schemas.warnings_for`) as flashes."""
    form = request.form
    parent = get_catalogue().get_task(form["parent"]) if form.get("parent") else None
    if form.get("action") == "add-lora":  # the form again, one LoRA row longer; nothing sent
        return render_form(form, parent=parent, extra_lora=1)
    params, errors, lora_order = read_form(form)
    if not errors:
        try:
            params = load_submission(params)
        except ParameterError as exc:
            errors = exc.errors
    if errors:
        return render_form(form, errors=form_errors(errors, lora_order), parent=parent,
                           status=422)
    # Accepted but without effect: a note on the preview, or on the task page sent to.
    for note in s.warnings_for(params):
        flash(f"Note: {note['parameter']} {note['message']}.")
    if form.get("action") == "preview":
        return render_form(form, parent=parent)
    outcome = submit_in_app(current_app, params,
                            parent=parent["task_uuid"] if parent else None,
                            rerun_mode="edit" if parent else None)
    recorded = get_catalogue().get_task(outcome.task_uuid) is not None
    if outcome.errors and not recorded:
        messages = [e.get("message") or e.get("code") for e in outcome.errors]
        return render_form(form, errors={"task": messages}, parent=parent,
                           status=outcome.http_status)
    return redirect(url_for("tasks.detail", task_uuid=outcome.task_uuid), 303)
