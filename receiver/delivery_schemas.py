"""Marshmallow schemas for what Runware delivers: result and error items (§3, §1) in every
delivery shape of §4 and §5 (``{"data": [...], "errors": [...]}``, the legacy ``error``,
a bare object), for webhooks, synchronous replies and ``getResponse`` alike.

Unlike the task schemas of :mod:`receiver.schemas`, these ignore unknown keys: a
third-party payload, whose raw body is logged elsewhere.
"""

import dataclasses
import uuid

from marshmallow import EXCLUDE, Schema, ValidationError, validates_schema

from receiver.schemas import (
    SEED_MAX,
    Bool,
    DeliveredUUID,
    HttpUrl,
    Int,
    Num,
    Str,
    StrOrStrList,
    at_least,
    between,
    collect_error,
    one_of,
    validation_errors,
)

__all__ = ["ResultItemSchema", "ErrorItemSchema", "Delivery", "parse_delivery", "warm_up"]

OUTPUT_FIELDS = ("imageURL", "imageBase64Data", "imageDataURI")  # §3: exactly one per result
RESULT_STATUSES = ("processing", "success", "error")  # §5: getResponse item status


class _Delivered(Schema):
    """Base for Runware's payloads: unknown keys are ignored (the raw body is logged)."""

    class Meta:
        unknown = EXCLUDE

    error_messages = {"type": "must be an object"}


class ResultItemSchema(_Delivered):
    """One result item (§3), or a getResponse item still `processing` (§5)."""

    taskType = Str()
    taskUUID = DeliveredUUID(required=True)
    imageUUID = DeliveredUUID()
    imageURL = HttpUrl()
    imageBase64Data = Str()
    imageDataURI = Str()
    seed = Int(validate=between(0, SEED_MAX))
    cost = Num(allow_none=True, validate=at_least(0))
    NSFWContent = Bool()
    status = Str(validate=one_of(RESULT_STATUSES))
    progress = Num(validate=between(0, 100))

    @validates_schema
    def _check_output(self, data, **kwargs):
        """A finished item has an imageUUID and exactly one output field (§3)."""
        if data.get("status") == "processing":
            return
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
    """One error item (§1, §5); Runware's codes vary, so only a code or message is required."""

    code = Str()
    message = Str()
    parameter = StrOrStrList()
    taskType = Str()
    taskUUID = Str()
    documentation = Str()
    status = Str()

    @validates_schema
    def _check_something_said(self, data, **kwargs):
        """An error item that names neither a code nor a message says nothing."""
        if "code" not in data and "message" not in data:
            raise ValidationError("an error needs a code or a message", field_name="code")


@dataclasses.dataclass
class Delivery:
    """A parsed delivery: finished results, error items and still-processing items."""

    results: list[dict] = dataclasses.field(default_factory=list)
    errors: list[dict] = dataclasses.field(default_factory=list)
    processing: list[dict] = dataclasses.field(default_factory=list)


def _is_error_item(item):
    # §4: a bare object with status "error", or with a code and no image, is a failure.
    return item.get("status") == "error" or ("code" in item and "imageUUID" not in item)


def _add_item(delivery, item, as_error, where, problems):
    """Load one item into the right list of `delivery`, or record its errors under `where`."""
    if not isinstance(item, dict):
        problems[where] = ["must be an object"]
        return
    schema = _ERROR_ITEM if as_error else _RESULT_ITEM
    try:
        loaded = schema.load(item)
    except ValidationError as err:
        for entry in validation_errors(err):
            key = ".".join(part for part in (where, entry["parameter"]) if part)
            problems.setdefault(key, []).append(entry["message"])
        return
    if as_error:
        delivery.errors.append(loaded)
    elif loaded.get("status") == "processing":
        delivery.processing.append(loaded)
    else:
        delivery.results.append(loaded)


# One instance each: building a marshmallow schema deep-copies its fields, which cost
# more than the load itself on the webhook's hot path. Schemas hold no per-load state.
_RESULT_ITEM = ResultItemSchema()
_ERROR_ITEM = ErrorItemSchema()


def _add_list(delivery, payload, key, problems):
    items = payload.get(key, [])
    if not isinstance(items, list):
        problems[key] = ["must be a list"]
        return
    for index, item in enumerate(items):
        as_error = key == "errors" or (isinstance(item, dict) and item.get("status") == "error")
        _add_item(delivery, item, as_error, f"{key}[{index}]", problems)


def _add_envelope(delivery, payload, problems):
    _add_list(delivery, payload, "data", problems)
    _add_list(delivery, payload, "errors", problems)
    legacy = payload.get("error")  # §1: old docs used a singular `error`
    if isinstance(legacy, str):
        legacy = {"message": legacy}
    if legacy is not None:
        _add_item(delivery, legacy, True, "error", problems)


def parse_delivery(payload) -> Delivery:
    """Parse a webhook body, sync reply or getResponse reply in any shape of §4.

    Accepts `{"data": [...], "errors": [...]}` (either key alone too), the legacy
    `{"error": ...}`, and a bare result or error object.

    :raises ValidationError: with messages keyed by item, e.g. `data[1].imageUUID`.
    """
    if not isinstance(payload, dict):
        raise ValidationError({"body": ["must be a JSON object"]})
    delivery, problems = Delivery(), {}
    if {"data", "errors", "error"} & payload.keys():
        _add_envelope(delivery, payload, problems)
    else:
        _add_item(delivery, payload, _is_error_item(payload), "", problems)
    if problems:
        raise ValidationError(problems)
    if not (delivery.results or delivery.errors or delivery.processing):
        raise ValidationError({"data": ["no results"]})
    return delivery


def warm_up():
    """Compile the validators' regular expressions now rather than on the first request
    (marshmallow's URL pattern, with every Unicode letter, takes ~40 ms to compile, and a
    gevent worker does nothing else meanwhile)."""
    parse_delivery({"taskType": "imageInference", "taskUUID": str(uuid.uuid4()),
                    "imageUUID": str(uuid.uuid4()), "imageURL": "https://example.com/x.jpg"})
