"""Tests for protocol.deliveries: what Runware delivers (runware-api.md §3–§5), in
every shape its own SDKs handle; lenient where they are, and every item that cannot be read
named with its reason."""

import pytest
from marshmallow import ValidationError

from protocol.deliveries import (
    MAX_COST,
    Delivery,
    ErrorItemSchema,
    ResultItemSchema,
    parse_delivery,
)
from protocol.schemas import SEED_MAX, validation_errors
from tests.conftest import seed_examples
from tests.test_schemas import IMAGE_UUID, RESULT, TASK_UUID


@pytest.mark.parametrize("example", seed_examples(), ids=lambda example: example["title"])
def test_seed_response_parses_bare_and_wrapped_alike(example):
    response = example["response"]
    bare = parse_delivery(response)
    wrapped = parse_delivery({"data": [response]})
    assert bare == wrapped
    assert bare.results == [response]
    assert bare.errors == bare.processing == []


# --- Deliveries --------------------------------------------------------------------------


def result(**changes):
    data = dict(RESULT)
    for key, value in changes.items():
        if value is ...:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def delivery_error_keys(payload):
    with pytest.raises(ValidationError) as info:
        parse_delivery(payload)
    return sorted(info.value.messages)


def test_bare_result_object():
    assert parse_delivery(result()) == Delivery(results=[RESULT])


def test_data_envelope_with_several_results():
    second = result(imageUUID="9a72d609-e8e6-46d4-a018-b5d553562edd", seed=22453)
    assert parse_delivery({"data": [result(), second]}).results == [RESULT, second]


def test_errors_envelope():
    error = {"code": "timeoutProvider", "message": "The provider timed out.",
             "parameter": "model", "taskType": "imageInference", "taskUUID": TASK_UUID,
             "documentation": "https://runware.ai/docs/platform/errors"}
    assert parse_delivery({"errors": [error]}) == Delivery(errors=[error])


def test_mixed_data_and_errors():
    error = {"code": "invalidApiKey", "message": "bad key"}
    delivery = parse_delivery({"data": [result()], "errors": [error]})
    assert delivery.results == [RESULT]
    assert delivery.errors == [error]


def test_data_item_with_error_status_is_an_error():
    failed = {"taskType": "imageInference", "taskUUID": TASK_UUID, "status": "error",
              "code": "timeoutProvider", "message": "timed out"}
    delivery = parse_delivery({"data": [result(), failed]})
    assert delivery.results == [RESULT]
    assert delivery.errors == [failed]


def test_get_response_reply_with_every_kind_of_item():
    processing = {"taskType": "getResponse", "taskUUID": TASK_UUID, "status": "processing",
                  "progress": 40}
    done = result(status="success", taskType="getResponse")
    failed = {"taskUUID": TASK_UUID, "status": "error", "code": "x", "documentation": "d"}
    delivery = parse_delivery({"data": [processing, done], "errors": [failed]})
    assert delivery == Delivery(results=[done], errors=[failed], processing=[processing])


@pytest.mark.parametrize("payload, message", [
    ({"error": {"code": "invalidApiKey", "message": "bad key"}},
     {"code": "invalidApiKey", "message": "bad key"}),
    ({"error": "Invalid API key"}, {"message": "Invalid API key"}),
])
def test_legacy_singular_error(payload, message):
    assert parse_delivery(payload) == Delivery(errors=[message])


@pytest.mark.parametrize("payload", [
    {"taskUUID": TASK_UUID, "status": "error", "message": "failed"},
    {"taskUUID": TASK_UUID, "code": "timeoutProvider", "message": "failed"},
    {"code": "invalidApiKey"},
])
def test_bare_error_object(payload):
    assert parse_delivery(payload) == Delivery(errors=[payload])


@pytest.mark.parametrize("item", [
    {"taskUUID": TASK_UUID, "status": "processing"},
    {"taskUUID": TASK_UUID, "status": "processing", "progress": 0},
    {"taskUUID": TASK_UUID, "status": "processing", "progress": 100},
    {"taskUUID": TASK_UUID, "status": "processing", "progress": 37.5},
])
def test_processing_items_need_no_image(item):
    assert parse_delivery(item) == Delivery(processing=[item])
    assert parse_delivery({"data": [item]}) == Delivery(processing=[item])


@pytest.mark.parametrize("output, value", [
    ("imageBase64Data", "iVBORw0KGgo="),
    ("imageDataURI", "data:image/png;base64,iVBORw0KGgo="),
])
def test_other_output_types(output, value):
    item = result(imageURL=..., **{output: value})
    assert parse_delivery({"data": [item]}).results == [item]


def test_base64_data_is_kept_as_the_same_object():
    big = "A" * 3_000_000
    delivery = parse_delivery(result(imageURL=..., imageBase64Data=big))
    assert delivery.results[0]["imageBase64Data"] is big


def test_success_status_and_optional_fields():
    item = result(status="success", NSFWContent=False, cost=None)
    assert parse_delivery(item).results == [item]


def test_unknown_delivery_keys_are_ignored():
    delivery = parse_delivery({"data": [result(extra=1)], "errors": [
        {"code": "x", "allowedValues": ["a"], "min": 1}], "meta": {}})
    assert delivery.results == [RESULT]
    assert delivery.errors == [{"code": "x"}]


def test_delivered_uuids_load_lower_case():
    item = result(taskUUID=TASK_UUID.upper(), imageUUID=IMAGE_UUID.upper())
    loaded = parse_delivery(item).results[0]
    assert (loaded["taskUUID"], loaded["imageUUID"]) == (TASK_UUID, IMAGE_UUID)


def test_error_parameter_may_be_a_list():
    error = {"code": "invalidParameter", "parameter": ["width", "height"]}
    assert parse_delivery({"errors": [error]}).errors == [error]


@pytest.mark.parametrize("payload, keys", [
    # missing or broken identity
    (result(imageUUID=...), ["imageUUID"]),
    ({"data": [result(imageUUID="abc")]}, ["data[0].imageUUID"]),
    ({"data": [result(imageUUID=None)]}, ["data[0].imageUUID"]),
    ({"data": [result(taskUUID=...)]}, ["data[0].taskUUID"]),
    ({"data": [result(taskUUID=5)]}, ["data[0].taskUUID"]),
    # outputs: exactly one
    (result(imageURL=...), ["imageURL"]),
    (result(imageBase64Data="QUJD"), ["imageBase64Data"]),
    ({"data": [result(imageDataURI="data:image/jpeg;base64,QUJD")]}, ["data[0].imageDataURI"]),
    (result(imageBase64Data="QUJD", imageDataURI="data:,x"),
     ["imageBase64Data", "imageDataURI"]),
    ({"data": [result(imageURL="not a url")]}, ["data[0].imageURL"]),
    # wrong types and ranges
    ({"data": [result(seed="5")]}, ["data[0].seed"]),
    ({"data": [result(seed=-1)]}, ["data[0].seed"]),
    ({"data": [result(seed=SEED_MAX + 1)]}, ["data[0].seed"]),
    ({"data": [result(seed=True)]}, ["data[0].seed"]),
    ({"data": [result(cost="0.0006")]}, ["data[0].cost"]),
    ({"data": [result(cost=-0.01)]}, ["data[0].cost"]),
    ({"data": [result(NSFWContent="false")]}, ["data[0].NSFWContent"]),
    ({"data": [result(progress=101)]}, ["data[0].progress"]),
    ({"data": [result(progress=-1)]}, ["data[0].progress"]),
    ({"data": [result(taskType=1)]}, ["data[0].taskType"]),
    # error items
    ({"errors": [{}]}, ["errors[0].code"]),
    ({"errors": [{"status": "error"}]}, ["errors[0].code"]),
    ({"errors": [{"code": 500}]}, ["errors[0].code"]),
    ({"errors": [{"code": "x", "parameter": ["width", 1]}]}, ["errors[0].parameter"]),
    ({"error": {"documentation": "d"}}, ["error.code"]),
    ({"error": 5}, ["error"]),
    # envelopes
    ({"data": "x"}, ["data"]),
    ({"data": {"0": RESULT}}, ["data"]),
    ({"errors": {"code": "x"}}, ["errors"]),
    ({"data": [None]}, ["data[0]"]),
    ([RESULT], ["body"]),
    ("text", ["body"]),
    (None, ["body"]),
])
def test_bad_deliveries_name_the_item(payload, keys):
    assert delivery_error_keys(payload) == keys


@pytest.mark.parametrize("payload", [{"data": []}, {"errors": []}, {"data": [], "errors": []}])
def test_empty_envelope_is_refused(payload):
    with pytest.raises(ValidationError) as info:
        parse_delivery(payload)
    assert info.value.messages == {"data": ["no results"]}


def test_unreadable_items_beside_good_ones_are_named_not_fatal():
    delivery = parse_delivery({"data": [result(), result(imageUUID=..., imageURL=...),
                                        result(seed="x"), "x", {"status": "processing"}]})
    assert delivery.results == [RESULT]
    assert delivery.processing == [{"status": "processing"}]
    assert delivery.unreadable == [
        {"item": "data[1].imageURL",
         "reason": "one of imageURL, imageBase64Data or imageDataURI is required"},
        {"item": "data[1].imageUUID", "reason": "is required"},
        {"item": "data[2].seed", "reason": "must be an integer"},
        {"item": "data[3]", "reason": "must be an object"},
    ]


def test_delivery_errors_flatten_like_task_errors():
    with pytest.raises(ValidationError) as info:
        parse_delivery({"data": [result(imageUUID=..., imageURL=...), result(seed="x")]})
    assert validation_errors(info.value) == [
        {"parameter": "data[0].imageURL",
         "message": "one of imageURL, imageBase64Data or imageDataURI is required"},
        {"parameter": "data[0].imageUUID", "message": "is required"},
        {"parameter": "data[1].seed", "message": "must be an integer"},
    ]


@pytest.mark.parametrize("status", ["success", "completed", "done", "ready"])
def test_any_status_of_a_finished_item_is_taken(status):
    """Runware's statuses are not a closed set; runware-python's _is_terminal treats an
    item with an output as finished whatever its status says."""
    assert parse_delivery(result(status=status)).results == [result(status=status)]


@pytest.mark.parametrize("item", [
    {"taskUUID": TASK_UUID, "imageUUID": IMAGE_UUID, "progress": 25},
    {"taskUUID": TASK_UUID, "status": "processing"},
    {"taskUUID": TASK_UUID, "status": "queued"},
    {"taskType": "imageInference", "taskUUID": TASK_UUID},
])
def test_progress_only_items_are_ignored(item):
    assert parse_delivery({"data": [item]}) == Delivery(processing=[item])


def test_a_failed_item_with_a_nested_error_keeps_its_ids():
    item = {"taskUUID": TASK_UUID.upper(), "imageUUID": IMAGE_UUID, "status": "error",
            "error": {"code": "inferenceError", "message": "one of N failed",
                      "taskUUID": "someone else"}}
    assert parse_delivery(item).errors == [{
        "taskUUID": TASK_UUID, "imageUUID": IMAGE_UUID, "status": "error",
        "code": "inferenceError", "message": "one of N failed"}]


@pytest.mark.parametrize("cost, ok", [(0.0013, True), (MAX_COST, True), (MAX_COST + 0.01, False),
                                      (1.7e308, False)])
def test_a_cost_is_bounded(cost, ok):
    payload = result(cost=cost)
    if ok:
        assert parse_delivery(payload).results[0]["cost"] == cost
    else:
        with pytest.raises(ValidationError):
            parse_delivery(payload)


@pytest.mark.parametrize("seed, loaded", [(22452.0, 22452), (None, None), (0, 0),
                                          (float(SEED_MAX // 2 ** 11 * 2 ** 11), SEED_MAX // 2 ** 11 * 2 ** 11)])
def test_a_seed_may_be_null_or_an_integral_float(seed, loaded):
    assert parse_delivery(result(seed=seed)).results[0]["seed"] == loaded


def test_item_schemas_load_directly():
    assert ResultItemSchema().load(result(extra=1)) == RESULT
    assert ErrorItemSchema().load({"message": "m", "type": "x"}) == {"message": "m"}
