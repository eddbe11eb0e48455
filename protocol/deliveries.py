"""Marshmallow schemas for what Runware delivers: result and error items (§3, §1) in every
delivery shape of §4 and §5 (``{"data": [...], "errors": [...]}``, the legacy ``error``,
a bare object), for webhooks, synchronous replies and ``getResponse`` alike.

Unlike the task schemas of :mod:`protocol.schemas`, these ignore unknown keys (a third
party's payload, whose raw body is logged elsewhere) and are lenient where Runware's own
SDKs are lenient, because refusing a delivery makes Runware retry it and loses every good
image in it:

- an item ``{"status": "error", "error": {"code", "message"}, "taskUUID", "imageUUID"}``
  inside ``data[]`` is that one image's failure (Runware/runware-python
  ``runware/client.py`` ``_AsyncCollector.ingest``, tested in ``tests/test_rest_polling.py``
  ``TestPerItemErrors``; Runware/runware-typescript ``src/client.ts``);
- an item with no output and no error is progress, not a result, whatever its ``status``
  says (runware-python ``_is_terminal``: an output field, or ``status == "completed"``);
- ``status`` may be any string; ``seed`` and ``NSFWContent`` may be null; a seed may come
  as an integral float (``22452.0``);
- an item that cannot be read is reported in :attr:`Delivery.unreadable` with its reason,
  and the rest of the delivery is still used.
"""

import dataclasses
import uuid

from marshmallow import EXCLUDE, Schema, ValidationError, validates_schema

from protocol.fields import (
    Bool,
    DeliveredUUID,
    HttpUrl,
    Int,
    Num,
    Str,
    StrOrStrList,
    between,
    collect_error,
    validation_errors,
)
from protocol.schemas import SEED_MAX

__all__ = ["ResultItemSchema", "ErrorItemSchema", "Delivery", "parse_delivery", "warm_up",
           "MAX_COST"]

OUTPUT_FIELDS = ("imageURL", "imageBase64Data", "imageDataURI")  # §3: exactly one per result
TERMINAL_STATUSES = ("success", "completed")  # runware-python client.py _is_terminal
# Fields only a finished result carries: an item with one of them but no output is a broken
# result, reported as unreadable, rather than progress passed over in silence.
RESULT_ONLY = frozenset({"seed", "cost", "NSFWContent"})
# What makes an item with no output Runware's progress report rather than noise.
PROGRESS_MARKS = frozenset({"taskUUID", "status", "progress"})
# USD per image. Runware's image prices are fractions of a cent to a few cents (§8); a cost
# past this is a corrupt or hostile payload, and one near 1e308 would make every total
# Infinity, which is not JSON.
MAX_COST = 100.0


class _Delivered(Schema):
    """Base for Runware's payloads: unknown keys are ignored (the raw body is logged)."""

    class Meta:
        unknown = EXCLUDE

    error_messages = {"type": "must be an object"}


class Seed(Int):
    """A seed: an integer, or the same integer written as a float (``22452.0``, as a JSON
    encoder with doubles writes it), or null (no seed reported)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


class ResultItemSchema(_Delivered):
    """One finished result item (§3), from a webhook, a sync reply or ``getResponse``."""

    taskType = Str()
    taskUUID = DeliveredUUID(required=True)
    imageUUID = DeliveredUUID()
    imageURL = HttpUrl()
    imageBase64Data = Str()
    imageDataURI = Str()
    seed = Seed(allow_none=True, validate=between(0, SEED_MAX))
    cost = Num(allow_none=True, validate=between(0, MAX_COST))
    NSFWContent = Bool(allow_none=True)
    status = Str()
    progress = Num(validate=between(0, 100))

    @validates_schema
    def _check_output(self, data, **kwargs):
        """A finished item has an imageUUID and exactly one output field (§3)."""
        errors = {}
        if "imageUUID" not in data:
            collect_error(errors, "imageUUID", "is required")
        given = [name for name in OUTPUT_FIELDS if name in data]
        if not given:
            collect_error(errors, "imageURL", "one of imageURL, imageBase64Data or imageDataURI "
                                         "is required")
        for extra in given[1:]:
            collect_error(errors, extra, f"cannot be given together with {given[0]}")
        if errors:
            raise ValidationError(errors)


class ErrorItemSchema(_Delivered):
    """One error item (§1, §5); Runware's codes vary, so only a code or message is required.
    ``imageUUID`` names the image that failed, when the error is one image's."""

    code = Str()
    message = Str()
    parameter = StrOrStrList()
    taskType = Str()
    taskUUID = Str()
    imageUUID = Str()
    documentation = Str()
    status = Str()

    @validates_schema
    def _check_something_said(self, data, **kwargs):
        """An error item that names neither a code nor a message says nothing."""
        if "code" not in data and "message" not in data:
            raise ValidationError("an error needs a code or a message", field_name="code")


@dataclasses.dataclass
class Delivery:
    """A parsed delivery: finished results, error items, progress items, and the items that
    could not be read (``{"item": "data[1]", "reason": ...}``)."""

    results: list[dict] = dataclasses.field(default_factory=list)
    errors: list[dict] = dataclasses.field(default_factory=list)
    processing: list[dict] = dataclasses.field(default_factory=list)
    unreadable: list[dict] = dataclasses.field(default_factory=list)

    @property
    def empty(self):
        """Nothing in it can be used: no result, no error, no progress."""
        return not (self.results or self.errors or self.processing)


def classify(item):
    """``"error"``, ``"result"``, ``"progress"`` or ``"unknown"``: what an item is.

    An error says so (``status: error``, a nested ``error``, or a ``code`` with no image);
    a result carries an output, a terminal status or a field only results have; progress
    names its task, a status or a progress; anything else is unknown (unreadable).
    """
    if item.get("status") == "error" or isinstance(item.get("error"), (dict, str)):
        return "error"
    has_output = any(name in item for name in OUTPUT_FIELDS)
    if "code" in item and not has_output and "imageUUID" not in item:
        return "error"
    if has_output or item.get("status") in TERMINAL_STATUSES or RESULT_ONLY & item.keys():
        return "result"
    return "progress" if PROGRESS_MARKS & item.keys() else "unknown"


def flatten_error(item):
    """An error item with its nested ``error`` object (or message) lifted to the top, keeping
    the item's own ``taskUUID`` and ``imageUUID``; the identifiers lower-cased for matching."""
    nested = item.get("error")
    if isinstance(nested, str):
        nested = {"message": nested}
    flat = {key: value for key, value in item.items() if key != "error"}
    if isinstance(nested, dict):
        flat.update(nested)  # the nested code and message say what went wrong...
        flat.update({key: item[key] for key in ("taskUUID", "imageUUID") if key in item})
    for key in ("taskUUID", "imageUUID"):  # ...and the item's own ids say to what
        if isinstance(flat.get(key), str):
            flat[key] = flat[key].lower()
    return flat


# One instance each: building a marshmallow schema deep-copies its fields, which cost
# more than the load itself on the webhook's hot path. Schemas hold no per-load state.
_RESULT_ITEM = ResultItemSchema()
_ERROR_ITEM = ErrorItemSchema()


def _add_item(delivery, item, where, problems, *, as_error=False):
    """Load one item into the right list of ``delivery``, or record why it can't be read."""
    if not isinstance(item, dict):
        problems.setdefault(where, []).append("must be an object")
        return
    kind = "error" if as_error else classify(item)
    if kind == "progress":
        delivery.processing.append(item)
        return
    if kind == "unknown":
        problems.setdefault(where, []).append("is not a result, an error or progress")
        return
    try:
        if kind == "error":
            delivery.errors.append(_ERROR_ITEM.load(flatten_error(item)))
        else:
            delivery.results.append(_RESULT_ITEM.load(item))
    except ValidationError as err:
        for entry in validation_errors(err):
            key = ".".join(part for part in (where, entry["parameter"]) if part)
            problems.setdefault(key, []).append(entry["message"])


def _add_list(delivery, payload, key, problems):
    items = payload.get(key, [])
    if not isinstance(items, list):
        problems[key] = ["must be a list"]
        return
    for index, item in enumerate(items):
        _add_item(delivery, item, f"{key}[{index}]", problems, as_error=key == "errors")


def _add_envelope(delivery, payload, problems):
    _add_list(delivery, payload, "data", problems)
    _add_list(delivery, payload, "errors", problems)
    legacy = payload.get("error")  # §1: a singular `error` is still sent, even as a list
    if isinstance(legacy, str):
        legacy = {"message": legacy}
    if isinstance(legacy, list):  # Runware/runware-python tests/test_ws_async_polling.py
        for index, item in enumerate(legacy):
            _add_item(delivery, item, f"error[{index}]", problems, as_error=True)
    elif legacy is not None:
        _add_item(delivery, legacy, "error", problems, as_error=True)


def is_envelope(payload):
    """``{"data": ...}``, ``{"errors": ...}`` or ``{"error": ...}``, as opposed to one bare
    item: a bare failed item has an ``error`` too, but also its own ``taskUUID``."""
    return ("data" in payload or "errors" in payload
            or ("error" in payload and "taskUUID" not in payload))


def parse_delivery(payload) -> Delivery:
    """Parse a webhook body, sync reply or getResponse reply in any shape of §4.

    Accepts ``{"data": [...], "errors": [...]}`` (either key alone too), the singular
    ``{"error": ...}``, and a bare result or error object. Items that cannot be read are
    listed in ``unreadable`` as long as something else in the payload can be used.

    :raises ValidationError: the payload is not an object, or nothing in it can be used;
        messages are keyed by item, e.g. ``data[1].imageUUID``.
    """
    if not isinstance(payload, dict):
        raise ValidationError({"body": ["must be a JSON object"]})
    delivery, problems = Delivery(), {}
    if is_envelope(payload):
        _add_envelope(delivery, payload, problems)
    else:
        _add_item(delivery, payload, "", problems)
    if delivery.empty:
        raise ValidationError(problems or {"data": ["no results"]})
    delivery.unreadable = [{"item": where, "reason": "; ".join(messages)}
                           for where, messages in sorted(problems.items())]
    return delivery


def warm_up():
    """Compile the validators' regular expressions now rather than on the first request
    (marshmallow's URL pattern, with every Unicode letter, takes ~40 ms to compile, and a
    gevent worker does nothing else meanwhile)."""
    parse_delivery({"taskType": "imageInference", "taskUUID": str(uuid.uuid4()),
                    "imageUUID": str(uuid.uuid4()), "imageURL": "https://example.com/x.jpg"})
