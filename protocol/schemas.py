"""Marshmallow schemas for Runware ``imageInference`` tasks (their field types and
validators, shared with :mod:`protocol.deliveries`, are :mod:`protocol.fields`).

The rules come from ``runware-api.md`` beside the checkout (``../shared/runware-api.md``),
§2 for task parameters (the seed's table). A rule that is not in that table names its
source beside it; where no source gives a limit (width and height have none for this model)
there is none here, and Runware's own validation answers. Task schemas refuse unknown keys
(our own input). Loading never fills in Runware's defaults: the service stores and sends
exactly what the user gave.

What the sources call accepted but ineffective (``ttl`` without URL output, a negative
prompt without guidance) is not an error: :func:`warnings_for` returns it as a note.
"""

import uuid

from marshmallow import RAISE, Schema, ValidationError, validate, validates_schema

from protocol.fields import (
    Bool, HttpUrl, Int, ListOf, Num, Obj, ServiceSet, Str, UpperChoice, at_least, between,
    collect_error, in_steps_of_hundredths, length_between, multiple_of_16, one_of,
    validation_errors,
)

__all__ = [
    "MODEL_ID", "SCHEDULERS", "OUTPUT_TYPES", "OUTPUT_FORMATS", "ACCELERATIONS",
    "LORA_TRANSFORMERS", "SAFETY_MODES", "DELIVERY_METHODS", "SEED_MAX", "RANDOM_SEED_MAX",
    "LoraSchema", "SafetySchema", "AcceleratorOptionsSchema", "ImageInferenceSchema",
    "SubmissionSchema", "ParameterError", "validation_errors", "load_submission", "load_task",
    "field_errors",
    "warnings_for",
]

MODEL_ID = "runware:twinflow-z-image-turbo@0"

# The 75 names of runware-api.md §2, from the SDK's generated schema; spelling is exact
# (Runware/runware-python runware/types/task_map.py, TwinflowZImageTurboParams.scheduler).
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
# §2: 0 … 2**63-1 (Runware's generic image-inference reference says min 1; the model's
# table, which this follows, starts at 0).
SEED_MAX = 2**63 - 1
RANDOM_SEED_MAX = 2**32 - 1  # §2: random seeds come from the unsigned 32-bit range
DEFAULT_STEPS = 4  # §2: what Runware uses when a task gives no steps
DEFAULT_SIZE = 1024  # §2: default width and height
DEFAULT_CFG_SCALE = 0  # §2: what Runware uses when a task gives no CFGScale
# The two styles of cache window (§2), each as (start, end): steps, then percentages.
CACHE_WINDOWS = (("cacheStartStep", "cacheEndStep"),
                 ("cacheStartStepPercentage", "cacheEndStepPercentage"))

_UUID4 = r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"
# AIR identifiers (`source:id@version`, e.g. civitai:12345@67890, runware:abc@1).
_AIR = r"^[A-Za-z0-9_-]+:[^\s:@]+@[^\s:@]+$"


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
    weight = Num(validate=[between(-4, 4), in_steps_of_hundredths])
    # §2, from runware.ai/docs/en/video-inference/api-reference (lora.transformer).
    transformer = Str(validate=one_of(LORA_TRANSFORMERS))


class SafetySchema(_TaskPart):
    """The `safety` object: content check on or off, and its mode."""

    checkContent = Bool()
    # §2 infers these two from the model page's "2 values" (§9: the exact strings are open).
    mode = Str(validate=one_of(SAFETY_MODES))


class AcceleratorOptionsSchema(_TaskPart):
    """The 12 `acceleratorOptions` fields; the check against the task's steps is in the task."""

    teaCache = Bool()
    teaCacheDistance = Num(validate=[between(0, 1), in_steps_of_hundredths])
    fbCache = Bool()
    # 0–1 is §2's. Steps of 0.01 as for teaCacheDistance: the generic reference
    # (runware.ai/docs/image-inference/api-reference) gives no step for either, and
    # Runware's own ComfyUI node steps its cache values by 0.01
    # (Runware/ComfyUI-Runware modules/acceleratorOptions.py).
    fbCacheThreshold = Num(validate=[between(0, 1), in_steps_of_hundredths])
    dbCache = Bool()
    dbCacheThreshold = Num(validate=[between(0, 1), in_steps_of_hundredths])
    dbCacheSkipInterval = Int(validate=at_least(1))
    cacheStartStep = Int(validate=at_least(0))
    cacheEndStep = Int(validate=at_least(1))
    cacheStartStepPercentage = Int(validate=between(0, 99))
    cacheEndStepPercentage = Int(validate=between(1, 100))
    cacheMaxConsecutiveSteps = Int(validate=between(1, 5))

    @validates_schema(skip_on_field_errors=False)  # every error in one answer
    def _check_cache_window(self, data, **kwargs):
        """Start before end, in each style: steps and percentages (§2).

        Giving both styles is not refused: §2 says "use one style or the other", and the
        docs call them "Alternative parameters" (runware.ai/docs/image-inference/
        api-reference, acceleratorOptions) without saying that both are an error or which
        one wins, so :func:`warnings_for` notes it instead.
        """
        errors = {}
        for start, end in CACHE_WINDOWS:
            if start in data and end in data and data[start] >= data[end]:
                collect_error(errors, end, f"must be greater than {start}")
        if errors:
            raise ValidationError(errors)


# Rules shared by ImageInferenceSchema and SubmissionSchema, which differ only in defaults.
_TASK_TYPE_RULE = one_of(("imageInference",), 'must be "imageInference"')
# Lower case is ours, not Runware's: deliveries are matched on the lower-case form.
_TASK_UUID_RULE = validate.Regexp(_UUID4, error="must be a UUID v4 in canonical lower-case form")
_MODEL_RULE = one_of((MODEL_ID,), f'must be "{MODEL_ID}"')
# Only §2's multiple of 16: no source gives this model a min or max (the SDKs' type maps say
# `width: int`, Runware/runware-python runware/types/task_map.py TwinflowZImageTurboParams;
# 128–2048 is the generic reference's range, which also says multiples of 64), so Runware's
# own validation answers for sizes it cannot make.
_SIZE_RULES = [multiple_of_16]
_SCHEDULER_RULE = one_of(SCHEDULERS, "must be one of the 75 scheduler names, spelt exactly")
_FORMAT_RULE = one_of(OUTPUT_FORMATS, "must be one of: {choices} (any case)")


class ImageInferenceSchema(_TaskPart):
    """A complete Runware `imageInference` task for TwinFlow Z-Image-Turbo, as sent."""

    taskType = Str(required=True, validate=_TASK_TYPE_RULE)
    taskUUID = Str(required=True, validate=_TASK_UUID_RULE)
    model = Str(required=True, validate=_MODEL_RULE)
    positivePrompt = Str(required=True, validate=length_between(2, 3000))
    negativePrompt = Str(validate=length_between(2, 3000))
    width = Int(required=True, validate=_SIZE_RULES)
    height = Int(required=True, validate=_SIZE_RULES)
    seed = Int(validate=between(0, SEED_MAX))
    steps = Int(validate=between(1, 50))
    CFGScale = Num(validate=[between(0, 50), in_steps_of_hundredths])
    scheduler = Str(validate=_SCHEDULER_RULE)
    numberResults = Int(validate=between(1, 20))
    outputType = Str(validate=one_of(OUTPUT_TYPES))
    outputFormat = UpperChoice(validate=_FORMAT_RULE)
    outputQuality = Int(validate=between(20, 99))
    # Any outputType: "It has no effect on other output types" (runware.ai/docs/
    # image-inference/api-reference, ttl), so it is a note of warnings_for, not an error.
    ttl = Int(validate=at_least(60))
    includeCost = Bool()
    deliveryMethod = Str(validate=one_of(DELIVERY_METHODS))
    webhookURL = HttpUrl()
    uploadEndpoint = HttpUrl()
    safety = Obj(SafetySchema)
    acceleration = Str(validate=one_of(ACCELERATIONS))
    lora = ListOf(Obj(LoraSchema), validate=validate.Length(min=1, error="must not be empty"))
    acceleratorOptions = Obj(AcceleratorOptionsSchema)

    @validates_schema(skip_on_field_errors=False, pass_original=True)
    def _check_cache_steps(self, data, original, **kwargs):
        """§2: cacheStartStep < cacheEndStep <= steps, with steps defaulting to 4.

        A cacheStartStep given alone may reach steps: "It can take values from 0 (first
        step) to the number of steps specified" (runware.ai/docs/image-inference/
        api-reference, acceleratorOptions.cacheStartStep, "Max: {steps}").

        It runs beside the fields' own errors, so one answer names them all; a steps
        that failed its own rule (given, but not loaded) is no limit to check against.
        """
        if "steps" not in data and isinstance(original, dict) and "steps" in original:
            return
        options = data.get("acceleratorOptions", {})
        steps = data.get("steps", DEFAULT_STEPS)
        errors = {}
        for name in ("cacheStartStep", "cacheEndStep"):
            if options.get(name, 0) > steps:
                collect_error(errors, name, f"must be at most the task's steps ({steps})")
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


def field_errors(data) -> list[dict]:
    """The errors of the parameters ``data`` gives, by a submission's rules, asking for
    none that is missing (the estimate checks a size and count before any prompt)."""
    try:
        SubmissionSchema(partial=True).load(data)
    except ValidationError as err:
        return validation_errors(err)
    return []


def load_task(data) -> dict:
    """Load a complete Runware task; :raises ParameterError: when it breaks a rule."""
    return _load(ImageInferenceSchema(), data)


# --- Warnings: accepted, but Runware will not act on it ------------------------------------


def warnings_for(params) -> list[dict]:
    """Notes on a valid task: parameters the sources say are accepted but have no effect.

    :param params: a task as :func:`load_task` or :func:`load_submission` returns it.
    :returns: ``[{"parameter", "message"}]`` like the errors, empty when there is nothing.
    """
    notes = []
    output_type = params.get("outputType", "URL")
    if "ttl" in params and output_type != "URL":
        notes.append({"parameter": "ttl", "message": (
            f"has no effect unless outputType is URL (it is {output_type}): only a hosted "
            "URL has a lifetime")})
    if "negativePrompt" in params:
        cfg_scale = params.get("CFGScale", DEFAULT_CFG_SCALE)
        # §2; "Ignored when guidance is disabled (CFGScale ≤ 1)" (Runware/runware-typescript
        # src/types/task-map.ts, ZImageTurboParams.negativePrompt).
        if cfg_scale <= 1:
            given = f"it is {cfg_scale}" if "CFGScale" in params else \
                f"it is left at the default {DEFAULT_CFG_SCALE}"
            notes.append({"parameter": "negativePrompt", "message": (
                f"is ignored when CFGScale is 1 or less ({given})")})
    options = params.get("acceleratorOptions") or {}
    steps, percentages = ([name for name in style if name in options]
                          for style in CACHE_WINDOWS)
    if steps and percentages:
        notes.append({"parameter": f"acceleratorOptions.{percentages[0]}", "message": (
            "is given together with " + "/".join(steps) + ": the docs call the two styles "
            "alternatives (use one or the other) and do not say which one Runware uses when "
            "both are given")})
    return notes
