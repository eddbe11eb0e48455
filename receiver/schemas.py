"""Marshmallow schemas for Runware ``imageInference`` tasks and their deliveries.

The rules come from ``runware-api.md`` beside the checkout (``../shared/runware-api.md``):
§2 for task parameters, §3 for the result object, §4 and §5 for the delivery shapes.
Task schemas refuse unknown keys (our own input); delivery schemas ignore them (a
third-party payload whose raw body is logged elsewhere).  Loading never fills in Runware's
defaults: the service stores and sends exactly what the user gave.
"""

import dataclasses
import math
import uuid

from marshmallow import (
    EXCLUDE,
    RAISE,
    Schema,
    ValidationError,
    fields,
    missing,
    validate,
    validates_schema,
)

__all__ = [
    "MODEL_ID", "SCHEDULERS", "OUTPUT_TYPES", "OUTPUT_FORMATS", "ACCELERATIONS",
    "LORA_TRANSFORMERS", "SAFETY_MODES", "DELIVERY_METHODS", "SEED_MAX", "RANDOM_SEED_MAX",
    "LoraSchema", "SafetySchema", "AcceleratorOptionsSchema", "ImageInferenceSchema",
    "SubmissionSchema", "ParameterError", "validation_errors", "load_submission", "load_task",
    "ResultItemSchema", "ErrorItemSchema", "Delivery", "parse_delivery",
]

MODEL_ID = "runware:twinflow-z-image-turbo@0"

# The 75 names of runware-api.md §2, from the SDK's generated schema; spelling is exact.
SCHEDULERS = (
    "DDIM", "DDIMScheduler", "DDPMScheduler", "DEISMultistepScheduler", "Default", "DPM++",
    "DPM++ 2M", "DPM++ 2M Beta", "DPM++ 2M Exponential", "DPM++ 2M Karras", "DPM++ 2M SDE",
    "DPM++ 2M SDE Beta", "DPM++ 2M SDE Exponential", "DPM++ 2M SDE Karras",
    "DPM++ 2M SDE Uniform", "DPM++ 2M Uniform", "DPM++ 3M", "DPM++ 3M Beta",
    "DPM++ 3M Exponential", "DPM++ 3M Karras", "DPM++ 3M SDE Uniform", "DPM++ 3M Uniform",
    "DPM++ Beta", "DPM++ Exponential", "DPM++ Karras", "DPM++ SDE", "DPM++ SDE Beta",
    "DPM++ SDE Exponential", "DPM++ SDE Karras", "DPM++ Uniform", "DPM++ Uniform Beta",
    "DPM++ Uniform Exponential", "DPM++ Uniform Karras", "DPMSolverMultistepInverse",
    "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler",
    "EDMDPMSolverMultistepScheduler", "EDMEulerScheduler", "Euler", "Euler a", "Euler Beta",
    "Euler Exponential", "Euler Karras", "EulerAncestralDiscreteScheduler",
    "EulerDiscreteScheduler", "FlowMatchEulerDiscreteScheduler", "Heun", "HeunDiscreteScheduler",
    "Heun Karras", "IPNDMScheduler", "IPNDM Uniform", "IPNDM Uniform Beta",
    "IPNDM Uniform Exponential", "IPNDM Uniform Karras", "KDPM2AncestralDiscreteScheduler",
    "KDPM2DiscreteScheduler", "LCM", "LCMScheduler", "LMS", "LMSDiscreteScheduler", "LMS Karras",
    "PNDMScheduler", "TCDScheduler", "UniPC", "UniPC 2M", "UniPC 2M Karras", "UniPC 2M Uniform",
    "UniPC 3M", "UniPC 3M Karras", "UniPC 3M Uniform", "UniPC Karras", "UniPC Uniform",
    "UniPC Uniform Beta", "UniPC Uniform Exponential", "UniPC Uniform Karras",
)  # fmt: skip
OUTPUT_TYPES = ("URL", "base64Data", "dataURI")
OUTPUT_FORMATS = ("JPG", "PNG", "WEBP")
ACCELERATIONS = ("none", "low", "medium", "high")
LORA_TRANSFORMERS = ("high", "low", "both")
SAFETY_MODES = ("none", "fast")
DELIVERY_METHODS = ("sync", "async")
SEED_MAX = 2**63 - 1
RANDOM_SEED_MAX = 2**32 - 1  # §2: random seeds come from the unsigned 32-bit range
DEFAULT_STEPS = 4  # §2: what Runware uses when a task gives no steps
DEFAULT_SIZE = 1024  # §2: default width and height
OUTPUT_FIELDS = ("imageURL", "imageBase64Data", "imageDataURI")  # §3: exactly one per result
RESULT_STATUSES = ("processing", "success", "error")  # §5: getResponse item status

_UUID4 = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
_ANY_UUID = r"(?i)^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
# AIR identifiers (`source:id@version`, e.g. civitai:12345@67890, runware:abc@1).
_AIR = r"^[A-Za-z0-9_-]+:[^\s:@]+@[^\s:@]+$"


# --- Strict JSON field types -------------------------------------------------------------


class _Messages:
    """Error wording shared by every field: the parameter name is added by the caller."""

    default_error_messages = {"required": "is required", "null": "must not be null"}


class Str(_Messages, fields.String):
    """A JSON string, nothing else."""

    default_error_messages = {"invalid": "must be a string"}


class Int(_Messages, fields.Integer):
    """A JSON integer: refuses strings, floats (even 5.0) and booleans."""

    default_error_messages = {"invalid": "must be an integer", "too_large": "is too large"}

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)


class Num(_Messages, fields.Float):
    """A JSON number (int or float, kept as given): refuses strings, booleans, NaN, infinity."""

    default_error_messages = {
        "invalid": "must be a number",
        "too_large": "is too large",
        "special": "must be a finite number",
    }

    def _validated(self, value):
        if not isinstance(value, (int, float)):
            raise self.make_error("invalid", input=value)
        super()._validated(value)  # refuses booleans, NaN and infinities
        return value


class Bool(_Messages, fields.Boolean):
    """A JSON boolean: only true or false, never 1, "yes" or "true"."""

    default_error_messages = {"invalid": "must be true or false"}

    def _deserialize(self, value, attr, data, **kwargs):
        if value is True or value is False:
            return value
        raise self.make_error("invalid", input=value)


class UpperChoice(Str):
    """A case-insensitive name, loaded upper-case (§2: the docs themselves send `jpg`)."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).upper()


class DeliveredUUID(Str):
    """A UUID of any version from Runware, loaded in canonical lower-case form for matching."""

    def __init__(self, **kwargs):
        super().__init__(validate=validate.Regexp(_ANY_UUID, error="must be a UUID"), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).lower()


class HttpUrl(_Messages, fields.Url):
    """An absolute http(s) URL of at most 2048 characters; loopback hosts are allowed."""

    default_error_messages = {"invalid": "must be an absolute http or https URL"}

    def __init__(self, **kwargs):
        length = validate.Length(max=2048, error="must be at most {max} characters")
        super().__init__(
            relative=False, schemes={"http", "https"}, require_tld=False, validate=length, **kwargs
        )


class Obj(_Messages, fields.Nested):
    """A nested JSON object."""


class ListOf(_Messages, fields.List):
    """A JSON array."""

    default_error_messages = {"invalid": "must be a list"}


class StrOrStrList(_Messages, fields.Field):
    """A string or a list of strings (§1: an error's `parameter` may be an array)."""

    default_error_messages = {"invalid": "must be a string or a list of strings"}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        raise self.make_error("invalid", input=value)


class ServiceSet(fields.Field):
    """A parameter the service sets itself, so a user-supplied value is refused."""

    def deserialize(self, value, attr=None, data=None, **kwargs):
        """Let an absent value through; refuse any given value, even null."""
        if value is missing:
            return missing
        raise ValidationError("is set by the service and must be left out")


# --- Validators --------------------------------------------------------------------------


def _between(low, high):
    return validate.Range(min=low, max=high, error="must be between {min} and {max}")


def _at_least(low):
    return validate.Range(min=low, error="must be at least {min}")


def _one_of(choices, what=None):
    return validate.OneOf(choices, error=what or "must be one of: {choices}")


def _length(low, high):
    return validate.Length(min=low, max=high, error="must be between {min} and {max} characters")


def _multiple_of_16(value):
    if value % 16:
        raise ValidationError("must be a multiple of 16")


def _in_steps_of_hundredths(value):
    # Floats such as 3.5 or 0.07 are not exact multiples of 0.01 in binary, hence the tolerance.
    scaled = value * 100
    if not math.isclose(scaled, round(scaled), abs_tol=1e-6):
        raise ValidationError("must be in steps of 0.01")


def _not_blank(value):
    if not value.strip():
        raise ValidationError("must not be only whitespace")


def _collect(errors, field, message):
    errors.setdefault(field, []).append(message)


# --- Task schemas (runware-api.md §2) -----------------------------------------------------


class _TaskPart(Schema):
    """Base for our own input: unknown keys are refused at every level."""

    class Meta:
        unknown = RAISE

    error_messages = {"unknown": "is not a known parameter", "type": "must be an object"}


class LoraSchema(_TaskPart):
    """One `lora[]` item: an AIR model id, a weight and the transformer it applies to."""

    model = Str(
        required=True,
        validate=validate.Regexp(_AIR, error="must be an AIR identifier like civitai:12345@67890"),
    )
    weight = Num(validate=[_between(-4, 4), _in_steps_of_hundredths])
    transformer = Str(validate=_one_of(LORA_TRANSFORMERS))


class SafetySchema(_TaskPart):
    """The `safety` object: content check on or off, and its mode."""

    checkContent = Bool()
    mode = Str(validate=_one_of(SAFETY_MODES))


class AcceleratorOptionsSchema(_TaskPart):
    """The 12 `acceleratorOptions` fields; the check against the task's steps is in the task."""

    teaCache = Bool()
    teaCacheDistance = Num(validate=[_between(0, 1), _in_steps_of_hundredths])
    fbCache = Bool()
    fbCacheThreshold = Num(validate=_between(0, 1))
    dbCache = Bool()
    dbCacheThreshold = Num(validate=_between(0, 1))
    dbCacheSkipInterval = Int(validate=_at_least(1))
    cacheStartStep = Int(validate=_at_least(0))
    cacheEndStep = Int(validate=_at_least(1))
    cacheStartStepPercentage = Int(validate=_between(0, 99))
    cacheEndStepPercentage = Int(validate=_between(1, 100))
    cacheMaxConsecutiveSteps = Int(validate=_between(1, 5))

    @validates_schema
    def _check_cache_window(self, data, **kwargs):
        """Start before end, in one style only: steps or percentages (§2)."""
        errors = {}
        for start, end in (("cacheStartStep", "cacheEndStep"),
                           ("cacheStartStepPercentage", "cacheEndStepPercentage")):
            if start in data and end in data and data[start] >= data[end]:
                _collect(errors, end, f"must be greater than {start}")
        step_style = [name for name in ("cacheStartStep", "cacheEndStep") if name in data]
        percent_style = [name for name in ("cacheStartStepPercentage", "cacheEndStepPercentage")
                         if name in data]
        if step_style and percent_style:
            _collect(errors, percent_style[0],
                     "cannot be combined with cacheStartStep/cacheEndStep; use one style")
        if errors:
            raise ValidationError(errors)


# Rules shared by ImageInferenceSchema and SubmissionSchema, which differ only in defaults.
_TASK_TYPE_RULE = _one_of(("imageInference",), 'must be "imageInference"')
_TASK_UUID_RULE = validate.Regexp(_UUID4, error="must be a UUID v4 in canonical lower-case form")
_MODEL_RULE = _one_of((MODEL_ID,), f'must be "{MODEL_ID}"')
# §2 gives no min/max for this model; 128–2048 is the old generic reference's range.
_SIZE_RULES = [_between(128, 2048), _multiple_of_16]
_SCHEDULER_RULE = _one_of(SCHEDULERS, "must be one of the 75 scheduler names, spelt exactly")
_FORMAT_RULE = _one_of(OUTPUT_FORMATS, "must be one of: {choices} (any case)")


class ImageInferenceSchema(_TaskPart):
    """A complete Runware `imageInference` task for TwinFlow Z-Image-Turbo, as sent."""

    taskType = Str(required=True, validate=_TASK_TYPE_RULE)
    taskUUID = Str(required=True, validate=_TASK_UUID_RULE)
    model = Str(required=True, validate=_MODEL_RULE)
    positivePrompt = Str(required=True, validate=[_length(2, 3000), _not_blank])
    negativePrompt = Str(validate=_length(2, 3000))
    width = Int(required=True, validate=_SIZE_RULES)
    height = Int(required=True, validate=_SIZE_RULES)
    seed = Int(validate=_between(0, SEED_MAX))
    steps = Int(validate=_between(1, 50))
    CFGScale = Num(validate=[_between(0, 50), _in_steps_of_hundredths])
    scheduler = Str(validate=_SCHEDULER_RULE)
    numberResults = Int(validate=_between(1, 20))
    outputType = Str(validate=_one_of(OUTPUT_TYPES))
    outputFormat = UpperChoice(validate=_FORMAT_RULE)
    outputQuality = Int(validate=_between(20, 99))
    ttl = Int(validate=_at_least(60))
    includeCost = Bool()
    deliveryMethod = Str(validate=_one_of(DELIVERY_METHODS))
    webhookURL = HttpUrl()
    uploadEndpoint = HttpUrl()
    safety = Obj(SafetySchema)
    acceleration = Str(validate=_one_of(ACCELERATIONS))
    lora = ListOf(Obj(LoraSchema), validate=validate.Length(min=1, error="must not be empty"))
    acceleratorOptions = Obj(AcceleratorOptionsSchema)

    @validates_schema
    def _check_ttl(self, data, **kwargs):
        """§2: ttl is the hosted URL's lifetime, so it needs URL output (the default)."""
        if "ttl" in data and data.get("outputType", "URL") != "URL":
            raise ValidationError("is only allowed when outputType is URL", field_name="ttl")

    @validates_schema
    def _check_cache_steps(self, data, **kwargs):
        """§2: cacheStartStep < cacheEndStep <= steps, with steps defaulting to 4."""
        options = data.get("acceleratorOptions", {})
        steps = data.get("steps", DEFAULT_STEPS)
        errors = {}
        if options.get("cacheEndStep", 0) > steps:
            _collect(errors, "cacheEndStep", f"must be at most the task's steps ({steps})")
        if options.get("cacheStartStep", 0) >= steps:
            _collect(errors, "cacheStartStep", f"must be less than the task's steps ({steps})")
        if errors:
            raise ValidationError(errors, field_name="acceleratorOptions")


def _new_task_uuid():
    return str(uuid.uuid4())


class SubmissionSchema(ImageInferenceSchema):
    """What `POST /api/tasks` accepts: a task with service-side defaults and service-set fields.

    `taskType`, `taskUUID`, `model`, `width` and `height` may be left out and are then filled
    in; `webhookURL`, `includeCost` and `uploadEndpoint` are the service's to set; `label` is
    kept for the catalogue and must be stripped before sending.
    """

    taskType = Str(load_default="imageInference", validate=_TASK_TYPE_RULE)
    taskUUID = Str(load_default=_new_task_uuid, validate=_TASK_UUID_RULE)
    model = Str(load_default=MODEL_ID, validate=_MODEL_RULE)
    width = Int(load_default=DEFAULT_SIZE, validate=_SIZE_RULES)
    height = Int(load_default=DEFAULT_SIZE, validate=_SIZE_RULES)
    webhookURL = ServiceSet()
    includeCost = ServiceSet()
    uploadEndpoint = ServiceSet()
    label = Str(validate=validate.Length(max=200, error="must be at most {max} characters"))


# --- Errors for API answers --------------------------------------------------------------


class ParameterError(Exception):
    """Invalid task input; `.errors` is a list of `{"parameter", "message"}` dicts."""

    def __init__(self, errors):
        self.errors = errors
        super().__init__("; ".join(f"{e['parameter']}: {e['message']}" for e in errors))


def _flatten(messages, path=()):
    """Yield (path parts, message) for marshmallow's nested error messages."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from _flatten(value, path if key == "_schema" else path + (key,))
    elif isinstance(messages, (list, tuple)):
        for item in messages:
            yield from _flatten(item, path)
    else:
        yield path, str(messages)


def _dotted(path):
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _path_order(item):
    # Field names sort by name, list indexes by number; same-path messages keep their order.
    return tuple((-1, part) if isinstance(part, str) else (part, "") for part in item[0])


def validation_errors(err: ValidationError) -> list[dict]:
    """Flatten `err.messages` into `[{"parameter": "lora[0].weight", "message": ...}]`."""
    flat = sorted(_flatten(err.messages), key=_path_order)
    return [{"parameter": _dotted(path), "message": message} for path, message in flat]


def _load(schema, data):
    if not isinstance(data, dict):
        raise ParameterError([{"parameter": "body", "message": "must be a JSON object"}])
    try:
        return schema.load(data)
    except ValidationError as err:
        raise ParameterError(validation_errors(err)) from err


def load_submission(data) -> dict:
    """Load a body of our JSON API; :raises ParameterError: when it breaks a rule."""
    return _load(SubmissionSchema(), data)


def load_task(data) -> dict:
    """Load a complete Runware task; :raises ParameterError: when it breaks a rule."""
    return _load(ImageInferenceSchema(), data)


# --- Deliveries (runware-api.md §3–§5) ----------------------------------------------------


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
    seed = Int(validate=_between(0, SEED_MAX))
    cost = Num(allow_none=True, validate=_at_least(0))
    NSFWContent = Bool()
    status = Str(validate=_one_of(RESULT_STATUSES))
    progress = Num(validate=_between(0, 100))

    @validates_schema
    def _check_output(self, data, **kwargs):
        """A finished item has an imageUUID and exactly one output field (§3)."""
        if data.get("status") == "processing":
            return
        errors = {}
        if "imageUUID" not in data:
            _collect(errors, "imageUUID", "is required")
        given = [name for name in OUTPUT_FIELDS if name in data]
        if not given:
            _collect(errors, "imageURL", "one of imageURL, imageBase64Data or imageDataURI "
                                         "is required")
        for extra in given[1:]:
            _collect(errors, extra, f"cannot be given together with {given[0]}")
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
