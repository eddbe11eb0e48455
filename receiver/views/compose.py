"""The submit form ``/new`` (and **Edit & re-run**, ``/new?from=<uuid>``), and the cost
estimate it shows, ``GET /api/estimate``.

Form fields are named by the parameter's dotted path (``acceleratorOptions.cacheEndStep``,
``lora[0].weight``), the same path the schema's errors use, so each error lands next to
its field. The form is validated by the same :func:`protocol.schemas.load_submission` as
the JSON API.

A task may carry any number of LoRAs, so their rows are not a fixed set of fields: the form
shows one row per LoRA of the values it is rendered with, numbered as they were, plus empty
ones (at least :data:`LORA_ROWS` rows, always one empty), and ``action=add-lora`` shows it
again with one more row (without JavaScript, the only way to add one).

Every error comes in one round: a value not of its field's kind (``steps=four``) is
reported together with every rule the schema checks on the rest, beside each field and
summed up at the top. A post that sends nothing (refused, a preview, one more LoRA row)
ends in a redirect to ``/new?draft=<id>`` (post-redirect-get, :func:`back_to_form`), so
reloading the page never posts the form again and the values are still there.
"""

import math
import re

from flask import (
    Blueprint, current_app, flash, redirect, render_template, request, url_for,
)

from archive import drafts, lineage
from archive.pricing import cost_per_image, estimate_cost
from receiver import get_catalogue
from protocol import schemas as s
from receiver.rerun import base_params
from protocol.schemas import ParameterError, field_errors, load_submission
from receiver.provider.submit import submit_in_app
from receiver.views.params import label

bp = Blueprint("compose", __name__)
LORA_ROWS = 3  # rows on an empty form
# Row numbers up to 4 digits: a posted ``lora[99999999999].model`` must not make the page
# render that many rows (only the numbers present are rendered, but keep them sane).
_LORA_NAME = re.compile(r"^lora\[(\d{1,4})\]\.(model|weight|transformer)$")
BOOL_CHOICES = ("true", "false")

# (name, kind, label, choices); kinds: text, textarea, int, float, bool, choice. Labels are
# receiver.views.params' (the task page's too); the API name is shown beside each.
BASIC = [(name, kind, label(name), None) for name, kind in (
    ("positivePrompt", "textarea"), ("negativePrompt", "textarea"), ("width", "int"),
    ("height", "int"), ("steps", "int"), ("CFGScale", "float"), ("seed", "int"),
    ("numberResults", "int"), ("label", "text"))]
ADVANCED = {
    "Sampling": [("model", "choice", label("model"), (s.MODEL_ID,)),
                 ("scheduler", "choice", label("scheduler"), s.SCHEDULERS),
                 ("acceleration", "choice", label("acceleration"), s.ACCELERATIONS)],
    "Accelerator options": [
        (f"acceleratorOptions.{name}", kind, label(f"acceleratorOptions.{name}"), None)
        for name, kind in (
            ("teaCache", "bool"), ("teaCacheDistance", "float"), ("fbCache", "bool"),
            ("fbCacheThreshold", "float"), ("dbCache", "bool"), ("dbCacheThreshold", "float"),
            ("dbCacheSkipInterval", "int"), ("cacheStartStep", "int"), ("cacheEndStep", "int"),
            ("cacheStartStepPercentage", "int"), ("cacheEndStepPercentage", "int"),
            ("cacheMaxConsecutiveSteps", "int"))],
    "LoRA": [],  # one row per LoRA: lora_fields()
    "Safety": [("safety.checkContent", "bool", label("safety.checkContent"), None),
               ("safety.mode", "choice", label("safety.mode"), s.SAFETY_MODES)],
    "Output": [("outputType", "choice", label("outputType"), s.OUTPUT_TYPES),
               ("outputFormat", "choice", label("outputFormat"), s.OUTPUT_FORMATS),
               ("outputQuality", "int", label("outputQuality"), None),
               ("ttl", "int", label("ttl"), None),
               ("deliveryMethod", "choice", label("deliveryMethod"), s.DELIVERY_METHODS)],
}
FIELDS = {f[0]: f for f in BASIC + [f for group in ADVANCED.values() for f in group]}
_PATH = re.compile(r"^(\w+)(?:\[(\d+)\])?(?:\.(\w+))?$")


def lora_fields(row):
    """The three fields of LoRA row ``row``, as ``(name, kind, label, choices)``."""
    return [(f"lora[{row}].model", "text", "Model (AIR)", None),
            (f"lora[{row}].weight", "float", "Weight", None),
            (f"lora[{row}].transformer", "choice", "Transformer", s.LORA_TRANSFORMERS)]


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
    """``(params, errors, LoRA rows)`` from the form; errors name the form's fields, LoRA
    rows numbered as on the form (empty rows are left out of ``lora``). A value that is
    not of its field's kind is an error here and goes into ``params`` as the text it was,
    so the schema still checks every other rule in the same round."""
    params, errors, lora_rows = {}, [], {}
    for name, (_, kind, _, _) in all_fields(form).items():
        raw = (form.get(name) or "").strip()
        if raw == "":
            continue
        try:
            _put(params, name, convert(kind, raw), lora_rows)
        except ValueError as exc:
            errors.append({"parameter": name, "message": str(exc)})
            _put(params, name, raw, lora_rows)
    if lora_rows:
        params["lora"] = [lora_rows[i] for i in sorted(lora_rows)]
    return params, errors, sorted(lora_rows)


def form_errors(errors, lora_order, first=()):
    """``{field name or group: [messages]}``: ``first`` (errors :func:`read_form` found,
    by form name), then the schema's ``errors`` with ``lora[k]`` renumbered to its form
    row, leaving out those about a field ``first`` already named (its value was not of
    its kind: that one message says it)."""
    out = {}
    for error in first:
        out.setdefault(error["parameter"], []).append(error["message"])
    named = set(out)
    for error in errors:
        name = error["parameter"] or "task"
        match = re.match(r"^lora\[(\d+)\]", name)
        if match and int(match[1]) < len(lora_order):
            name = f"lora[{lora_order[int(match[1])]}]" + name[match.end():]
        if name in named:
            continue
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


ESTIMATED = ("width", "height", "steps", "numberResults")


def estimate(params, bad=()):
    """``(task estimate, per image, errors)`` for parameters, with Runware's defaults
    (§2) for what they leave out; no price for values the schema refuses (50 images, a
    height of 5000), only the errors. ``bad``: what :func:`read_form` refused already."""
    named = {e["parameter"] for e in bad}
    errors = [e for e in bad if e["parameter"] in ESTIMATED] + field_errors(
        {k: params[k] for k in ESTIMATED if k in params and k not in named})
    if errors:
        return None, None, errors
    width, height = params.get("width", s.DEFAULT_SIZE), params.get("height", s.DEFAULT_SIZE)
    steps, count = params.get("steps", s.DEFAULT_STEPS), params.get("numberResults", 1)
    return estimate_cost(width, height, steps, count), cost_per_image(width, height, steps), []


def summary_of(errors, fields):
    """The error summary at the top of the form: ``[(anchor, label, messages)]`` in the
    form's order, each linking to its field (or its group, or nowhere for the task)."""
    order = {name: i for i, name in enumerate(fields)}
    out = []
    for name, messages in errors.items():
        if name in fields:
            out.append((order[name], f"f-{name}", field_label(fields[name]), messages))
        elif name in ADVANCED:
            out.append((len(order), f"g-{name}", name, messages))
        else:
            out.append((len(order) + 1, "", "The task", messages))
    return [item[1:] for item in sorted(out, key=lambda item: item[0])]


def field_label(field):
    """A field's label, with its LoRA row where it has one (``LoRA 2: Weight``)."""
    match = _LORA_NAME.match(field[0])
    return f"LoRA {int(match[1]) + 1}: {field[2]}" if match else field[2]


def render_form(values, *, errors=None, parent=None, seed_note=False, extra_lora=0,
                draft_gone=False):
    """The form page with ``values``, errors by field (and summed up at the top), the
    estimate (or why there is none) and the diff; ``extra_lora`` more empty LoRA rows
    than :func:`lora_rows` gives."""
    params, bad, _ = read_form(values)
    total, each, unpriced = estimate(params, bad)
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
    shown = dict(FIELDS, **{f[0]: f for f in advanced["LoRA"]})
    return render_template(
        "compose/new.html", values=values, errors=errors, basic=BASIC, advanced=advanced,
        open_groups=open_groups, parent=parent, parent_values=parent_values, diff=diff,
        estimate=total, per_image=each, unpriced=[
            f"{label(e['parameter'])} {e['message']}" for e in unpriced],
        seed_note=seed_note, summary=summary_of(errors, shown), draft_gone=draft_gone,
    )


@bp.get("/new")
def new():
    """An empty form; with ``?from=<uuid>`` the form of **Edit & re-run**; with
    ``?draft=<id>`` what a post that sent nothing left to show (:func:`back_to_form`)."""
    catalogue = get_catalogue()
    if request.args.get("draft"):
        draft = drafts.load(catalogue.conn, request.args["draft"][:64])
        if draft is not None:
            values = draft["values"]
            parent = catalogue.get_task(values["parent"]) if values.get("parent") else None
            return render_form(values, errors=draft["errors"], parent=parent,
                               extra_lora=draft["extra_lora"])
    parent = catalogue.get_task(request.args["from"]) if request.args.get("from") else None
    if parent is None:
        return render_form({"width": "1024", "height": "1024", "steps": "4",
                            "numberResults": "1"}, draft_gone="draft" in request.args)
    values = to_form(base_params(parent))
    from_result = "seed" not in values and bool(parent["results"]) \
        and parent["results"][0]["seed"] is not None
    if from_result:
        values["seed"] = str(parent["results"][0]["seed"])
    return render_form(values, parent=parent, seed_note=from_result)


def back_to_form(form, errors=None, extra_lora=0):
    """Post-redirect-get for a post that sent nothing: its values (every field the form
    had, capped) and errors kept as a draft (:mod:`archive.drafts`), and a 303 to
    ``/new?draft=<id>``, so a reload shows the same again and never posts."""
    names = [*all_fields(form), "parent"]
    values = {name: form[name][:drafts.MAX_VALUE] for name in names if name in form}
    draft_id = drafts.save(get_catalogue(), {"values": values, "errors": errors or {},
                                             "extra_lora": extra_lora})
    return redirect(url_for("compose.new", draft=draft_id), 303)


@bp.post("/new")
def create():
    """Send; or preview (estimate and diff), or add a LoRA row, or refuse with every error
    beside its field: those end on the form again through :func:`back_to_form`. Notes on
    parameters without effect (:func:`protocol.schemas.warnings_for`) are flashes."""
    form = request.form
    parent = get_catalogue().get_task(form["parent"]) if form.get("parent") else None
    if form.get("action") == "add-lora":  # one LoRA row more; nothing sent
        return back_to_form(form, extra_lora=1)
    params, bad, lora_order = read_form(form)
    try:
        params = load_submission(params)
        refused = []
    except ParameterError as exc:
        refused = exc.errors
    if bad or refused:
        return back_to_form(form, form_errors(refused, lora_order, bad))
    # Accepted but without effect: a note on the preview, or on the task page sent to.
    for note in s.warnings_for(params):
        flash(f"Note: {note['parameter']} {note['message']}.")
    if form.get("action") == "preview":
        return back_to_form(form)
    outcome = submit_in_app(current_app, params,
                            parent=parent["task_uuid"] if parent else None,
                            rerun_mode="edit" if parent else None)
    recorded = get_catalogue().get_task(outcome.task_uuid) is not None
    if outcome.errors and not recorded:
        messages = [e.get("message") or e.get("code") for e in outcome.errors]
        return back_to_form(form, {"task": messages})
    return redirect(url_for("tasks.detail", task_uuid=outcome.task_uuid), 303)
