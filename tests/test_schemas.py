"""Tests for protocol.schemas: the task rules of runware-api.md §2 (deliveries, §3–§5:
tests/test_delivery_schemas.py)."""

import copy
import re
import uuid

import pytest
from marshmallow import ValidationError

from protocol.schemas import (
    ACCELERATIONS,
    DELIVERY_METHODS,
    LORA_TRANSFORMERS,
    MODEL_ID,
    OUTPUT_FORMATS,
    OUTPUT_TYPES,
    RANDOM_SEED_MAX,
    SAFETY_MODES,
    SCHEDULERS,
    SEED_MAX,
    ImageInferenceSchema,
    ParameterError,
    SubmissionSchema,
    load_submission,
    load_task,
    validation_errors,
    warnings_for,
)
from tests.conftest import seed_examples

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
TASK_UUID = "b235b0c2-8081-499d-97a6-3bc21824c55a"
IMAGE_UUID = "52650014-5265-4d72-9520-e5dfd6ebe403"
IMAGE_URL = f"https://im.runware.ai/image/os/a14d18/ws/2/ii/{IMAGE_UUID}.jpg"
BASE_TASK = {
    "taskType": "imageInference",
    "taskUUID": TASK_UUID,
    "model": MODEL_ID,
    "positivePrompt": "a glasshouse train platform",
    "width": 1024,
    "height": 768,
}
RESULT = {
    "taskType": "imageInference",
    "taskUUID": TASK_UUID,
    "imageUUID": IMAGE_UUID,
    "imageURL": IMAGE_URL,
    "seed": 22452,
    "cost": 0.0006,
}


def task(**changes):
    """BASE_TASK with some parameters changed (a value of `...` removes the parameter)."""
    data = copy.deepcopy(BASE_TASK)
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def error_parameters(loader, data):
    """The parameter names of the errors `loader` reports for `data` (it must fail)."""
    with pytest.raises(ParameterError) as info:
        loader(data)
    return [error["parameter"] for error in info.value.errors]


def error_messages(loader, data):
    with pytest.raises(ParameterError) as info:
        loader(data)
    return [error["message"] for error in info.value.errors]



# --- Constants ---------------------------------------------------------------------------


def test_constants():
    assert MODEL_ID == "runware:twinflow-z-image-turbo@0"
    assert len(SCHEDULERS) == 75
    assert len(set(SCHEDULERS)) == 75
    assert OUTPUT_TYPES == ("URL", "base64Data", "dataURI")
    assert OUTPUT_FORMATS == ("JPG", "PNG", "WEBP")
    assert ACCELERATIONS == ("none", "low", "medium", "high")
    assert LORA_TRANSFORMERS == ("high", "low", "both")
    assert SAFETY_MODES == ("none", "fast")
    assert DELIVERY_METHODS == ("sync", "async")
    assert SEED_MAX == 9223372036854775807
    assert RANDOM_SEED_MAX == 4294967295


# --- ImageInferenceSchema: values that pass ------------------------------------------------

LONG_URL = "https://example.com/" + "x" * (2048 - len("https://example.com/"))

VALID = [
    ("taskUUID", "597b0f59-518e-4b21-a119-85598fd8c2fa"),
    ("positivePrompt", "ab"),
    ("positivePrompt", "p" * 3000),
    ("positivePrompt", "  a cat  "),
    ("positivePrompt", "   "),  # no source refuses a blank prompt; Runware answers for it
    ("positivePrompt", "a cat 🐈 in a hat"),  # a character outside the BMP is fine
    ("negativePrompt", "ab"),
    ("negativePrompt", "n" * 3000),
    ("width", 128),
    ("width", 144),
    ("width", 2032),
    ("width", 2048),
    ("height", 128),
    ("height", 2048),
    # No source gives this model a min or max size: only the multiple of 16 is ours to check.
    ("width", 16),
    ("width", 112),
    ("width", 2064),
    ("height", 4096),
    ("seed", 0),
    ("seed", 1),
    ("seed", RANDOM_SEED_MAX),
    ("seed", SEED_MAX),
    ("steps", 1),
    ("steps", 50),
    ("CFGScale", 0),
    ("CFGScale", 0.0),
    ("CFGScale", 0.07),
    ("CFGScale", 3.5),
    ("CFGScale", 7),
    ("CFGScale", 49.99),
    ("CFGScale", 50),
    ("numberResults", 1),
    ("numberResults", 20),
    ("outputQuality", 20),
    ("outputQuality", 99),
    ("ttl", 60),
    ("ttl", 86400),
    ("includeCost", True),
    ("includeCost", False),
    ("webhookURL", "https://archive.example.com/webhooks/runware?token=abc"),
    ("webhookURL", "http://127.0.0.1:5000/webhooks/runware?token=abc"),
    ("webhookURL", "http://localhost:8080/hook"),
    ("webhookURL", LONG_URL),
    ("uploadEndpoint", "https://bucket.s3.amazonaws.com/key.jpg?X-Amz-Signature=abc"),
    ("safety", {}),
    ("safety", {"checkContent": True}),
    ("safety", {"checkContent": False, "mode": "fast"}),
    ("safety", {"mode": "none"}),
    ("lora", [{"model": "civitai:12345@67890"}]),
    ("lora", [{"model": "runware:abc@1", "weight": -4, "transformer": "high"}]),
    ("lora", [{"model": "runware:abc@1", "weight": 4, "transformer": "low"}]),
    ("lora", [{"model": "runware:abc@1", "weight": 0.01, "transformer": "both"}]),
    ("lora", [{"model": "runware:abc@1", "weight": -3.99}, {"model": "civitai:1@2", "weight": 1}]),
    ("acceleratorOptions", {}),
    *[("outputType", value) for value in OUTPUT_TYPES],
    *[("deliveryMethod", value) for value in DELIVERY_METHODS],
    *[("acceleration", value) for value in ACCELERATIONS],
]


@pytest.mark.parametrize("field, value", VALID)
def test_valid_value_is_kept_as_given(field, value):
    assert load_task(task(**{field: value}))[field] == value


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_scheduler_is_valid(scheduler):
    assert load_task(task(scheduler=scheduler))["scheduler"] == scheduler


@pytest.mark.parametrize("given, loaded", [
    ("JPG", "JPG"), ("PNG", "PNG"), ("WEBP", "WEBP"),
    ("jpg", "JPG"), ("png", "PNG"), ("webp", "WEBP"), ("Webp", "WEBP"),
])
def test_output_format_accepts_any_case_and_loads_upper_case(given, loaded):
    assert load_task(task(outputFormat=given))["outputFormat"] == loaded


@pytest.mark.parametrize("output_type", [..., "URL"])
def test_ttl_is_allowed_with_url_output_or_the_default(output_type):
    assert load_task(task(ttl=60, outputType=output_type))["ttl"] == 60


def test_loading_fills_in_no_defaults():
    data = task(steps=4, outputFormat="PNG", lora=[{"model": "civitai:12345@67890"}],
                safety={"checkContent": True}, acceleratorOptions={"teaCache": True})
    assert load_task(data) == data


def test_a_full_task_with_every_parameter_loads():
    data = task(
        negativePrompt="blurry", seed=42, steps=8, CFGScale=1.5, scheduler="Euler a",
        numberResults=2, outputType="URL", outputFormat="WEBP", outputQuality=90, ttl=3600,
        includeCost=True, deliveryMethod="async", webhookURL="https://a.example/hook?token=t",
        uploadEndpoint="https://b.example/put", safety={"checkContent": True, "mode": "fast"},
        acceleration="medium", lora=[{"model": "civitai:12345@67890", "weight": 0.75,
                                      "transformer": "both"}],
        acceleratorOptions={
            "teaCache": True, "teaCacheDistance": 0.5, "fbCache": False, "fbCacheThreshold": 0.25,
            "dbCache": False, "dbCacheThreshold": 0.25, "dbCacheSkipInterval": 5,
            "cacheStartStep": 1, "cacheEndStep": 8, "cacheMaxConsecutiveSteps": 3,
        },
    )
    assert load_task(data) == data


# --- ImageInferenceSchema: values that fail, and the parameter each error names ------------

INVALID = [
    # taskType, taskUUID, model
    ({"taskType": ...}, "taskType"),
    ({"taskType": "imageinference"}, "taskType"),
    ({"taskType": "getResponse"}, "taskType"),
    ({"taskType": None}, "taskType"),
    ({"taskType": 1}, "taskType"),
    ({"taskUUID": ...}, "taskUUID"),
    ({"taskUUID": "not-a-uuid"}, "taskUUID"),
    ({"taskUUID": TASK_UUID.upper()}, "taskUUID"),
    ({"taskUUID": TASK_UUID.replace("-", "")}, "taskUUID"),
    ({"taskUUID": "{" + TASK_UUID + "}"}, "taskUUID"),
    ({"taskUUID": "b235b0c2-8081-199d-97a6-3bc21824c55a"}, "taskUUID"),  # version 1
    ({"taskUUID": "b235b0c2-8081-499d-c7a6-3bc21824c55a"}, "taskUUID"),  # wrong variant
    ({"taskUUID": 12345}, "taskUUID"),
    ({"model": ...}, "model"),
    ({"model": "runware:z-image@turbo"}, "model"),
    ({"model": MODEL_ID.upper()}, "model"),
    # prompts
    ({"positivePrompt": ...}, "positivePrompt"),
    ({"positivePrompt": "a"}, "positivePrompt"),
    ({"positivePrompt": "p" * 3001}, "positivePrompt"),
    ({"positivePrompt": ""}, "positivePrompt"),
    ({"positivePrompt": "a cat \ud800"}, "positivePrompt"),  # a lone surrogate
    ({"positivePrompt": "\udfff\ud800 cat"}, "positivePrompt"),  # low before high: no pair
    ({"positivePrompt": None}, "positivePrompt"),
    ({"positivePrompt": 42}, "positivePrompt"),
    ({"negativePrompt": "n"}, "negativePrompt"),
    ({"negativePrompt": "n" * 3001}, "negativePrompt"),
    ({"negativePrompt": ["blurry"]}, "negativePrompt"),
    ({"negativePrompt": "blurry \udc00"}, "negativePrompt"),
    # width and height
    *[({side: value}, side) for side in ("width", "height") for value in (
        ..., 1000, 1025, 8, -15, 2**64, "1024", 1024.0, 1024.5, True, False, None)],
    # seed
    ({"seed": -1}, "seed"),
    ({"seed": SEED_MAX + 1}, "seed"),
    ({"seed": "5"}, "seed"),
    ({"seed": 5.5}, "seed"),
    ({"seed": 5.0}, "seed"),
    ({"seed": True}, "seed"),
    ({"seed": False}, "seed"),
    ({"seed": None}, "seed"),
    # steps
    ({"steps": 0}, "steps"),
    ({"steps": 51}, "steps"),
    ({"steps": "4"}, "steps"),
    ({"steps": 4.0}, "steps"),
    ({"steps": True}, "steps"),
    # CFGScale
    ({"CFGScale": -0.01}, "CFGScale"),
    ({"CFGScale": 50.01}, "CFGScale"),
    ({"CFGScale": 0.005}, "CFGScale"),
    ({"CFGScale": 3.555}, "CFGScale"),
    ({"CFGScale": "3.5"}, "CFGScale"),
    ({"CFGScale": True}, "CFGScale"),
    ({"CFGScale": None}, "CFGScale"),
    ({"CFGScale": float("nan")}, "CFGScale"),
    ({"CFGScale": float("inf")}, "CFGScale"),
    # scheduler
    ({"scheduler": "euler a"}, "scheduler"),
    ({"scheduler": "Euler A"}, "scheduler"),
    ({"scheduler": "Euler a "}, "scheduler"),
    ({"scheduler": "DPM++ 2M karras"}, "scheduler"),
    ({"scheduler": "dpm++"}, "scheduler"),
    ({"scheduler": ""}, "scheduler"),
    ({"scheduler": 1}, "scheduler"),
    # numberResults, outputType, outputFormat, outputQuality
    ({"numberResults": 0}, "numberResults"),
    ({"numberResults": 21}, "numberResults"),
    ({"numberResults": "1"}, "numberResults"),
    ({"numberResults": 1.0}, "numberResults"),
    ({"outputType": "url"}, "outputType"),
    ({"outputType": "base64"}, "outputType"),
    ({"outputType": "file"}, "outputType"),
    ({"outputType": 1}, "outputType"),
    ({"outputFormat": "GIF"}, "outputFormat"),
    ({"outputFormat": "jpeg"}, "outputFormat"),
    ({"outputFormat": ""}, "outputFormat"),
    ({"outputFormat": 1}, "outputFormat"),
    ({"outputQuality": 19}, "outputQuality"),
    ({"outputQuality": 100}, "outputQuality"),
    ({"outputQuality": 95.0}, "outputQuality"),
    ({"outputQuality": "95"}, "outputQuality"),
    # ttl
    ({"ttl": 59}, "ttl"),
    ({"ttl": 0}, "ttl"),
    ({"ttl": "60"}, "ttl"),
    ({"ttl": 60.0}, "ttl"),
    ({"ttl": True}, "ttl"),
    ({"ttl": 2**63}, "ttl"),  # past what the catalogue's INTEGER column holds
    # includeCost, deliveryMethod
    ({"includeCost": 1}, "includeCost"),
    ({"includeCost": 0}, "includeCost"),
    ({"includeCost": "true"}, "includeCost"),
    ({"includeCost": None}, "includeCost"),
    ({"deliveryMethod": "SYNC"}, "deliveryMethod"),
    ({"deliveryMethod": "webhook"}, "deliveryMethod"),
    # webhookURL and uploadEndpoint
    *[({name: value}, name) for name in ("webhookURL", "uploadEndpoint") for value in (
        "example.com/hook", "/webhooks/runware", "ftp://example.com/hook", "javascript:alert(1)",
        "https://", "", LONG_URL + "x", 5, None)],
    # safety
    ({"safety": {"checkContent": 1}}, "safety.checkContent"),
    ({"safety": {"checkContent": "true"}}, "safety.checkContent"),
    ({"safety": {"mode": "full"}}, "safety.mode"),
    ({"safety": {"mode": "Fast"}}, "safety.mode"),
    ({"safety": {"level": "fast"}}, "safety.level"),
    ({"safety": []}, "safety"),
    ({"safety": "fast"}, "safety"),
    ({"safety": True}, "safety"),
    # acceleration
    ({"acceleration": "max"}, "acceleration"),
    ({"acceleration": "Medium"}, "acceleration"),
    ({"acceleration": True}, "acceleration"),
    # lora
    ({"lora": []}, "lora"),
    ({"lora": {"model": "civitai:12345@67890"}}, "lora"),
    ({"lora": "civitai:12345@67890"}, "lora"),
    ({"lora": ["civitai:12345@67890"]}, "lora[0]"),
    ({"lora": [{}]}, "lora[0].model"),
    ({"lora": [{"weight": 1}]}, "lora[0].model"),
    ({"lora": [{"model": "civitai:12345"}]}, "lora[0].model"),
    ({"lora": [{"model": "civitai12345@67890"}]}, "lora[0].model"),
    ({"lora": [{"model": "civitai:12345@"}]}, "lora[0].model"),
    ({"lora": [{"model": ":12345@67890"}]}, "lora[0].model"),
    ({"lora": [{"model": "civitai:12345@67890 "}]}, "lora[0].model"),
    ({"lora": [{"model": "civitai:123 45@67890"}]}, "lora[0].model"),
    ({"lora": [{"model": 12345}]}, "lora[0].model"),
    ({"lora": [{"model": "civitai:\ud800@1"}]}, "lora[0].model"),
    ({"lora": [{"model": "civitai:1@2", "weight": 4.01}]}, "lora[0].weight"),
    ({"lora": [{"model": "civitai:1@2", "weight": -4.01}]}, "lora[0].weight"),
    ({"lora": [{"model": "civitai:1@2", "weight": 0.005}]}, "lora[0].weight"),
    ({"lora": [{"model": "civitai:1@2", "weight": "1"}]}, "lora[0].weight"),
    ({"lora": [{"model": "civitai:1@2", "weight": True}]}, "lora[0].weight"),
    ({"lora": [{"model": "civitai:1@2", "transformer": "mid"}]}, "lora[0].transformer"),
    ({"lora": [{"model": "civitai:1@2", "transformer": "BOTH"}]}, "lora[0].transformer"),
    ({"lora": [{"model": "civitai:1@2", "scale": 1}]}, "lora[0].scale"),
    ({"lora": [{"model": "civitai:1@2"}, {"model": "civitai:1@2", "weight": 9}]},
     "lora[1].weight"),
    # acceleratorOptions: the container
    ({"acceleratorOptions": []}, "acceleratorOptions"),
    ({"acceleratorOptions": {"cache": True}}, "acceleratorOptions.cache"),
]

ACCELERATOR_INVALID = [
    ("teaCache", 1), ("teaCache", "true"), ("teaCache", None),
    ("teaCacheDistance", -0.01), ("teaCacheDistance", 1.01), ("teaCacheDistance", 0.505),
    ("teaCacheDistance", "0.5"), ("teaCacheDistance", True),
    ("fbCache", "yes"), ("fbCache", 0),
    ("fbCacheThreshold", -0.01), ("fbCacheThreshold", 1.01), ("fbCacheThreshold", "0.25"),
    ("fbCacheThreshold", False), ("fbCacheThreshold", 0.255), ("fbCacheThreshold", 0.333),
    ("fbCacheThreshold", 0.005),
    ("dbCache", 0), ("dbCache", "false"),
    ("dbCacheThreshold", -0.01), ("dbCacheThreshold", 1.5), ("dbCacheThreshold", "0.25"),
    ("dbCacheThreshold", 0.255), ("dbCacheThreshold", 0.999),
    ("dbCacheSkipInterval", 0), ("dbCacheSkipInterval", -1), ("dbCacheSkipInterval", 1.5),
    ("dbCacheSkipInterval", "5"), ("dbCacheSkipInterval", True),
    ("cacheStartStep", -1), ("cacheStartStep", 1.0), ("cacheStartStep", "1"),
    ("cacheStartStep", False),
    ("cacheEndStep", 0), ("cacheEndStep", 2.5), ("cacheEndStep", True),
    ("cacheStartStepPercentage", -1), ("cacheStartStepPercentage", 100),
    ("cacheStartStepPercentage", 50.5), ("cacheStartStepPercentage", "50"),
    ("cacheEndStepPercentage", 0), ("cacheEndStepPercentage", 101),
    ("cacheEndStepPercentage", 50.5), ("cacheEndStepPercentage", True),
    ("cacheMaxConsecutiveSteps", 0), ("cacheMaxConsecutiveSteps", 6),
    ("cacheMaxConsecutiveSteps", 3.0), ("cacheMaxConsecutiveSteps", "3"),
]


@pytest.mark.parametrize("changes, parameter", INVALID)
def test_invalid_value_is_refused_naming_the_parameter(changes, parameter):
    assert set(error_parameters(load_task, task(**changes))) == {parameter}


@pytest.mark.parametrize("field, value", ACCELERATOR_INVALID)
def test_invalid_accelerator_option_is_refused(field, value):
    data = task(acceleratorOptions={field: value})
    assert error_parameters(load_task, data) == [f"acceleratorOptions.{field}"]


ACCELERATOR_VALID = [
    {"teaCache": True}, {"teaCache": False},
    {"teaCacheDistance": 0}, {"teaCacheDistance": 1}, {"teaCacheDistance": 0.01},
    {"teaCacheDistance": 0.5}, {"teaCacheDistance": 0.99},
    {"fbCache": True}, {"fbCacheThreshold": 0}, {"fbCacheThreshold": 1},
    {"fbCacheThreshold": 0.25}, {"fbCacheThreshold": 0.07}, {"fbCacheThreshold": 0.33},
    {"dbCache": True}, {"dbCacheThreshold": 0}, {"dbCacheThreshold": 1},
    {"dbCacheThreshold": 0.25}, {"dbCacheThreshold": 0.29},
    {"dbCacheSkipInterval": 1}, {"dbCacheSkipInterval": 100},
    {"cacheStartStep": 0}, {"cacheStartStep": 3}, {"cacheEndStep": 1}, {"cacheEndStep": 4},
    {"cacheStartStep": 0, "cacheEndStep": 4}, {"cacheStartStep": 3, "cacheEndStep": 4},
    {"cacheStartStepPercentage": 0}, {"cacheStartStepPercentage": 99},
    {"cacheEndStepPercentage": 1}, {"cacheEndStepPercentage": 100},
    {"cacheStartStepPercentage": 0, "cacheEndStepPercentage": 100},
    {"cacheStartStepPercentage": 98, "cacheEndStepPercentage": 99},
    {"cacheMaxConsecutiveSteps": 1}, {"cacheMaxConsecutiveSteps": 5},
]


@pytest.mark.parametrize("options", ACCELERATOR_VALID)
def test_valid_accelerator_options_load_as_given(options):
    assert load_task(task(acceleratorOptions=options))["acceleratorOptions"] == options


# --- Cross-field rules --------------------------------------------------------------------

CROSS_FIELD_VALID = [
    ({"cacheStartStep": 0, "cacheEndStep": 8}, 8),
    ({"cacheStartStep": 10, "cacheEndStep": 20}, 20),
    ({"cacheStartStep": 0, "cacheEndStep": 50}, 50),
    ({"cacheStartStep": 9}, 10),
    ({"cacheEndStep": 8}, 8),
    ({"cacheStartStepPercentage": 10, "cacheEndStepPercentage": 100}, 4),
    ({"cacheStartStepPercentage": 10, "cacheEndStepPercentage": 100}, 1),
    # a lone start may reach the steps (the docs: "Max: {steps}"), given or the default 4
    ({"cacheStartStep": 4}, ...),
    ({"cacheStartStep": 10}, 10),
    # both styles: the docs call them alternatives, none calls both an error (a warning)
    ({"cacheStartStep": 0, "cacheEndStepPercentage": 50}, ...),
    ({"cacheEndStep": 2, "cacheStartStepPercentage": 10}, ...),
    ({"cacheStartStep": 0, "cacheEndStep": 2, "cacheStartStepPercentage": 10,
      "cacheEndStepPercentage": 50}, ...),
]


@pytest.mark.parametrize("options, steps", CROSS_FIELD_VALID)
def test_cache_window_within_steps_is_valid(options, steps):
    loaded = load_task(task(steps=steps, acceleratorOptions=options))
    assert loaded["acceleratorOptions"] == options


CROSS_FIELD_INVALID = [
    # start must be before end
    ({"cacheStartStep": 2, "cacheEndStep": 2}, ..., "acceleratorOptions.cacheEndStep"),
    ({"cacheStartStep": 3, "cacheEndStep": 2}, ..., "acceleratorOptions.cacheEndStep"),
    ({"cacheStartStepPercentage": 50, "cacheEndStepPercentage": 50}, ...,
     "acceleratorOptions.cacheEndStepPercentage"),
    ({"cacheStartStepPercentage": 60, "cacheEndStepPercentage": 40}, ...,
     "acceleratorOptions.cacheEndStepPercentage"),
    # end must not pass the task's steps, given or the default 4
    ({"cacheStartStep": 0, "cacheEndStep": 5}, ..., "acceleratorOptions.cacheEndStep"),
    ({"cacheEndStep": 5}, ..., "acceleratorOptions.cacheEndStep"),
    ({"cacheStartStep": 0, "cacheEndStep": 9}, 8, "acceleratorOptions.cacheEndStep"),
    ({"cacheEndStep": 2}, 1, "acceleratorOptions.cacheEndStep"),
    # a lone start must not pass the steps either
    ({"cacheStartStep": 5}, ..., "acceleratorOptions.cacheStartStep"),
    ({"cacheStartStep": 11}, 10, "acceleratorOptions.cacheStartStep"),
    # each style's own window still runs forwards when both are given
    ({"cacheStartStep": 2, "cacheEndStep": 1, "cacheStartStepPercentage": 10}, ...,
     "acceleratorOptions.cacheEndStep"),
]


@pytest.mark.parametrize("options, steps, parameter", CROSS_FIELD_INVALID)
def test_cache_window_rules(options, steps, parameter):
    data = task(steps=steps, acceleratorOptions=options)
    assert error_parameters(load_task, data) == [parameter]


def test_cross_field_messages_say_the_rule():
    data = task(acceleratorOptions={"cacheStartStep": 1, "cacheEndStep": 5})
    assert error_messages(load_task, data) == ["must be at most the task's steps (4)"]
    data = task(acceleratorOptions={"cacheStartStep": 2, "cacheEndStep": 2})
    assert error_messages(load_task, data) == ["must be greater than cacheStartStep"]
    data = task(steps=8, acceleratorOptions={"cacheStartStep": 9})
    assert error_messages(load_task, data) == ["must be at most the task's steps (8)"]


# --- Warnings: accepted, but without effect -----------------------------------------------


@pytest.mark.parametrize("output_type", ["base64Data", "dataURI"])
def test_ttl_with_other_output_is_accepted_with_a_warning(output_type):
    loaded = load_task(task(ttl=60, outputType=output_type))
    assert loaded["ttl"] == 60
    assert warnings_for(loaded) == [{"parameter": "ttl", "message": (
        f"has no effect unless outputType is URL (it is {output_type}): only a hosted URL "
        "has a lifetime")}]


@pytest.mark.parametrize("changes", [
    {}, {"ttl": 60}, {"ttl": 60, "outputType": "URL"}, {"outputType": "base64Data"},
    {"negativePrompt": "blurry", "CFGScale": 1.01}, {"negativePrompt": "blurry", "CFGScale": 7},
    {"CFGScale": 0}, {"acceleratorOptions": {"cacheStartStep": 0, "cacheEndStep": 2}},
    {"acceleratorOptions": {"cacheStartStepPercentage": 0, "cacheEndStepPercentage": 50}},
])
def test_no_warnings_when_every_parameter_takes_effect(changes):
    assert warnings_for(load_task(task(**changes))) == []


@pytest.mark.parametrize("changes, said", [
    ({}, "it is left at the default 0"),
    ({"CFGScale": 0}, "it is 0"),
    ({"CFGScale": 0.5}, "it is 0.5"),
    ({"CFGScale": 1}, "it is 1"),
])
def test_a_negative_prompt_without_guidance_gets_a_warning(changes, said):
    loaded = load_task(task(negativePrompt="blurry", **changes))
    assert warnings_for(loaded) == [{"parameter": "negativePrompt", "message": (
        f"is ignored when CFGScale is 1 or less ({said})")}]


def test_both_cache_window_styles_get_a_warning():
    options = {"cacheStartStep": 0, "cacheEndStep": 2, "cacheEndStepPercentage": 50}
    assert warnings_for(load_task(task(acceleratorOptions=options))) == [{
        "parameter": "acceleratorOptions.cacheEndStepPercentage",
        "message": "is given together with cacheStartStep/cacheEndStep: the docs call the two "
                   "styles alternatives (use one or the other) and do not say which one "
                   "Runware uses when both are given"}]


def test_warnings_come_in_a_fixed_order_and_apply_to_submissions():
    loaded = load_submission({"positivePrompt": "a cat", "negativePrompt": "blurry", "ttl": 60,
                              "outputType": "dataURI"})
    assert [w["parameter"] for w in warnings_for(loaded)] == ["ttl", "negativePrompt"]


# --- Unknown fields and bodies ------------------------------------------------------------


@pytest.mark.parametrize("changes, parameter", [
    ({"prompt": "a cat"}, "prompt"),
    ({"Seed": 1}, "Seed"),
    ({"label": "mine"}, "label"),
    ({"safety": {"checkContent": True, "extra": 1}}, "safety.extra"),
    ({"lora": [{"model": "civitai:1@2", "extra": 1}]}, "lora[0].extra"),
    ({"acceleratorOptions": {"teaCache": True, "extra": 1}}, "acceleratorOptions.extra"),
])
def test_unknown_fields_are_refused_at_every_level(changes, parameter):
    with pytest.raises(ParameterError) as info:
        load_task(task(**changes))
    assert info.value.errors == [{"parameter": parameter, "message": "is not a known parameter"}]


def test_an_unknown_key_with_a_lone_surrogate_is_named_escaped():
    with pytest.raises(ParameterError) as info:
        load_task(task(**{"se\ud800ed": 1}))
    assert info.value.errors == [{"parameter": "se\\ud800ed",
                                  "message": "is not a known parameter"}]
    assert str(info.value).encode("utf-8")  # printable and storable as it is


@pytest.mark.parametrize("loader", [load_task, load_submission])
@pytest.mark.parametrize("body", [[], [BASE_TASK], "text", None, 5, True])
def test_a_body_that_is_not_an_object_gives_one_error(loader, body):
    with pytest.raises(ParameterError) as info:
        loader(body)
    assert info.value.errors == [{"parameter": "body", "message": "must be a JSON object"}]


# --- Error messages and their order -------------------------------------------------------


@pytest.mark.parametrize("changes, message", [
    ({"width": 1000}, "must be a multiple of 16"),
    ({"steps": 51}, "must be between 1 and 50"),
    ({"seed": True}, "must be an integer"),
    ({"CFGScale": "3.5"}, "must be a number"),
    ({"CFGScale": 0.005}, "must be in steps of 0.01"),
    ({"includeCost": 1}, "must be true or false"),
    ({"positivePrompt": "a"}, "must be between 2 and 3000 characters"),
    ({"positivePrompt": "a \ud800"},
     "contains an invalid character (a lone UTF-16 surrogate)"),
    ({"width": 2**63}, "is too large"),
    ({"acceleratorOptions": {"fbCacheThreshold": 0.255}}, "must be in steps of 0.01"),
    ({"positivePrompt": ...}, "is required"),
    ({"positivePrompt": None}, "must not be null"),
    ({"ttl": 59}, "must be at least 60"),
    ({"outputType": "url"}, "must be one of: URL, base64Data, dataURI"),
    ({"webhookURL": "ftp://x.example/"}, "must be an absolute http or https URL"),
    ({"lora": []}, "must not be empty"),
])
def test_messages_say_the_rule(changes, message):
    assert message in error_messages(load_task, task(**changes))


def test_errors_are_sorted_by_parameter_with_dotted_paths():
    data = task(width=100, seed=-1, foo=1, acceleratorOptions={"cacheEndStep": 0},
                lora=[{"model": "civitai:1@2"}, {"model": "bad", "weight": 5.001}])
    assert error_parameters(load_task, data) == [
        "acceleratorOptions.cacheEndStep", "foo", "lora[1].model", "lora[1].weight",
        "lora[1].weight", "seed", "width",
    ]


def test_validation_errors_flattens_marshmallow_messages():
    with pytest.raises(ValidationError) as info:
        ImageInferenceSchema().load(task(lora=[{"model": "civitai:1@2", "weight": 4.01}]))
    assert validation_errors(info.value) == [
        {"parameter": "lora[0].weight", "message": "must be between -4 and 4"}]


def test_validation_errors_of_a_plain_message_names_no_parameter():
    assert validation_errors(ValidationError("broken")) == [
        {"parameter": "", "message": "broken"}]


def test_parameter_error_carries_the_error_list():
    error = ParameterError([{"parameter": "width", "message": "must be a multiple of 16"}])
    assert isinstance(error, Exception)
    assert error.errors[0]["parameter"] == "width"
    assert "width" in str(error)


# --- SubmissionSchema --------------------------------------------------------------------


def test_submission_fills_in_service_defaults():
    loaded = load_submission({"positivePrompt": "a cat on a mat"})
    assert loaded["taskType"] == "imageInference"
    assert loaded["model"] == MODEL_ID
    assert loaded["width"] == loaded["height"] == 1024
    assert UUID4.match(loaded["taskUUID"])
    assert set(loaded) == {"taskType", "taskUUID", "model", "positivePrompt", "width", "height"}


def test_submission_draws_a_new_uuid_each_time():
    first = load_submission({"positivePrompt": "a cat"})["taskUUID"]
    second = load_submission({"positivePrompt": "a cat"})["taskUUID"]
    assert first != second
    assert uuid.UUID(first).version == 4


def test_submission_keeps_what_the_user_gave():
    data = task(width=512, height=1536, steps=8, label="my cat")
    assert load_submission(data) == data


@pytest.mark.parametrize("field, value", [
    ("webhookURL", "https://example.com/hook"),
    ("webhookURL", None),
    ("includeCost", True),
    ("includeCost", False),
    ("uploadEndpoint", "https://bucket.example.com/put"),
])
def test_submission_refuses_fields_the_service_sets(field, value):
    with pytest.raises(ParameterError) as info:
        load_submission({"positivePrompt": "a cat", field: value})
    assert info.value.errors == [
        {"parameter": field, "message": "is set by the service and must be left out"}]


@pytest.mark.parametrize("changes, parameter", [
    ({"taskType": "getResponse"}, "taskType"),
    ({"taskUUID": "nope"}, "taskUUID"),
    ({"model": "runware:other@1"}, "model"),
    ({"width": 1000}, "width"),
    ({"height": True}, "height"),
    ({"positivePrompt": ...}, "positivePrompt"),
    ({"label": "x" * 201}, "label"),
    ({"label": 5}, "label"),
    ({"label": "client \ud800"}, "label"),
    ({"lora": [{"model": "civitai:1@2", "transformer": "mid"}]}, "lora[0].transformer"),
    ({"unknown": 1}, "unknown"),
])
def test_submission_applies_every_task_rule(changes, parameter):
    assert error_parameters(load_submission, task(**changes)) == [parameter]


@pytest.mark.parametrize("label", ["", "my cat", "x" * 200])
def test_submission_accepts_a_label(label):
    assert load_submission(task(label=label))["label"] == label


def test_submission_schema_is_an_image_inference_schema():
    assert issubclass(SubmissionSchema, ImageInferenceSchema)


# --- The four seed examples ---------------------------------------------------------------


@pytest.mark.parametrize("example", seed_examples(), ids=lambda example: example["title"])
def test_seed_request_validates_as_a_task(example):
    assert load_task(example["request"]) == example["request"]
    assert ImageInferenceSchema().validate(example["request"]) == {}


def test_defaults_for_names_what_runware_used_for_what_was_left_out():
    from protocol.defaults import defaults_for
    given = {"positivePrompt": "a harbor", "width": 512, "height": 512, "steps": 8,
             "safety": {"checkContent": True}, "lora": [{"model": "civitai:1@2", "weight": 0.5}]}
    found = defaults_for(given)
    assert found["CFGScale"] == 0 and found["outputQuality"] == 95
    assert not {"width", "height", "steps", "scheduler", "acceleration", "seed"} & found.keys()
    assert found["safety.mode"] == "fast" and "safety.checkContent" not in found
    assert found["lora[0].transformer"] == "both" and "lora[0].weight" not in found
    assert defaults_for({"safety": {"checkContent": False}})["safety.mode"] == "none"
    assert "safety.mode" not in defaults_for({}) and defaults_for({})["safety.checkContent"] is False


def test_a_type_error_hides_no_other_error_and_cross_field_rules_run_beside_them():
    body = {"positivePrompt": "x", "width": 1000, "steps": "four", "numberResults": 50,
            "CFGScale": "lots", "acceleratorOptions": {"cacheStartStep": 3, "cacheEndStep": 2,
                                                       "teaCache": "yes"}}
    with pytest.raises(ParameterError) as caught:
        load_submission(body)
    assert [e["parameter"] for e in caught.value.errors] == [
        "CFGScale", "acceleratorOptions.cacheEndStep", "acceleratorOptions.teaCache",
        "numberResults", "positivePrompt", "steps", "width"]
    # steps failed its own rule, so the cache steps are not held against a guessed steps
    with pytest.raises(ParameterError) as caught:
        load_submission({"positivePrompt": "ab", "steps": "four",
                         "acceleratorOptions": {"cacheEndStep": 9}})
    assert [e["parameter"] for e in caught.value.errors] == ["steps"]
    with pytest.raises(ParameterError) as caught:  # and with steps fine, it is
        load_submission({"positivePrompt": "ab", "steps": 4, "CFGScale": "x",
                         "acceleratorOptions": {"cacheEndStep": 9}})
    assert [e["parameter"] for e in caught.value.errors] == [
        "CFGScale", "acceleratorOptions.cacheEndStep"]


def test_field_errors_check_only_what_is_given():
    from protocol.schemas import field_errors
    assert field_errors({"numberResults": 3}) == []
    assert [e["parameter"] for e in field_errors({"numberResults": 50, "height": 5000})] == [
        "height", "numberResults"]
