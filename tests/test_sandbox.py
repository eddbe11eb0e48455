"""Conformance of the sandbox provider to ``../shared/runware-api.md``, over loopback HTTP.

The sandbox runs inside the app on a real port (``live_server``); webhooks and uploads go to a
tiny recording HTTP server (:class:`Capture`); state is the real ``sandbox.db``. Time-bound
behaviour (getResponse progress, ttl expiry) uses a settable clock instead of sleeping.
"""

import base64
import hashlib
import io
import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from PIL import Image, ImageChops, ImageStat

from archive.pricing import cost_per_image
from receiver import config as settings
from receiver import create_app
from sandbox import render as sandbox_render
from sandbox.faults import FaultSyntaxError, parse_faults
from sandbox.guard import sandbox_key
from protocol.deliveries import parse_delivery
from protocol.schemas import MODEL_ID, RANDOM_SEED_MAX
from tests.conftest import LiveServer

MAX_ATTEMPTS = 4


@pytest.fixture
def app_config(app_config):
    """Fast timings: results 10 ms apart, retries from 20 ms capped at 100 ms, 4 attempts."""
    return {**app_config, "RUNWARE_SANDBOX_RESULT_DELAY": 0.01,
            "RUNWARE_SANDBOX_RETRY_BASE": 0.02, "RUNWARE_SANDBOX_RETRY_CAP": 0.1,
            "RUNWARE_SANDBOX_MAX_ATTEMPTS": MAX_ATTEMPTS,
            "RUNWARE_SANDBOX_WEBHOOK_TIMEOUT": 2.0}


class Clock:
    """A settable clock for the sandbox (seconds since the epoch)."""

    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class Sandbox:
    """Talks to the sandbox the way a Runware client does."""

    def __init__(self, server):
        self.app = server.app
        self.url = server.url + settings.SANDBOX_PATH

    @property
    def state(self):
        return self.app.extensions["sandbox"]

    @property
    def key(self):
        """The sandbox's own key, as the archive's client sends it."""
        return sandbox_key(self.app.config)

    def post(self, *tasks, key=..., faults=None, headers=None, raw=None):
        headers = dict(headers or {})
        key = self.key if key is ... else key
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        if faults is not None:
            headers["X-Sandbox-Faults"] = faults
        if raw is not None:
            headers["Content-Type"] = "application/json"
            return requests.post(self.url, data=raw, headers=headers, timeout=10)
        return requests.post(self.url, json=list(tasks), headers=headers, timeout=10)

    def poll(self, task_uuid):
        return self.post({"taskType": "getResponse", "taskUUID": task_uuid})

    def freeze(self):
        clock = Clock()
        self.state.clock = clock
        return clock


def new_task(**fields):
    """A valid imageInference task; ``fields`` override or add (None removes)."""
    task = {"taskType": "imageInference", "taskUUID": str(uuid.uuid4()), "model": MODEL_ID,
            "positivePrompt": "a lighthouse at dawn, oil painting", "width": 512,
            "height": 384, "steps": 4}
    task.update(fields)
    return {k: v for k, v in task.items() if v is not None}


@pytest.fixture
def sandbox(live_server):
    return Sandbox(live_server)


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: bytes
    at: float

    def json(self):
        return json.loads(self.body)


class Capture:
    """A tiny HTTP server that records every request and answers from a script."""

    def __init__(self, statuses=(), default=200, slow_first=0.0):
        self.received, self.cond = [], threading.Condition()
        self.statuses, self.default, self.slow_first = list(statuses), default, slow_first
        capture = self

        class Handler(BaseHTTPRequestHandler):
            def handle_one(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with capture.cond:
                    index = len(capture.received)
                    capture.received.append(Received(self.command, self.path,
                                                      dict(self.headers), body,
                                                      time.monotonic()))
                    capture.cond.notify_all()
                if index == 0 and capture.slow_first:
                    time.sleep(capture.slow_first)
                status = (capture.statuses[index] if index < len(capture.statuses)
                          else capture.default)
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the sandbox gave up waiting (the timeout test)

            do_POST = do_PUT = handle_one

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.005},
                         daemon=True).start()

    def wait(self, count, timeout=10):
        with self.cond:
            self.cond.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def capture_factory(app):
    """Recording servers the sandbox may call back (each is added to
    ``RUNWARE_SANDBOX_CALLBACKS``, as ``runware-archive sandbox --callback-base`` does)."""
    made = []

    def make(**kwargs):
        made.append(Capture(**kwargs))
        app.config["RUNWARE_SANDBOX_CALLBACKS"] = ",".join(f"{c.url}/" for c in made)
        return made[-1]

    yield make
    for capture in made:
        capture.close()


@pytest.fixture
def capture(capture_factory):
    return capture_factory()


def decode(data):
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def wait_until(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --- authentication and envelopes ------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer ", "Bearer    ", "Basic dXNlcjpwYXNz", "key"])
def test_a_missing_key_gets_runwares_401(sandbox, header):
    headers = {"Authorization": header} if header is not None else {}
    reply = sandbox.post(new_task(), key=None, headers=headers)
    assert reply.status_code == 401
    assert reply.json() == {"data": [], "errors": [{
        "code": "invalidApiKey", "message": reply.json()["errors"][0]["message"],
        "parameter": "apiKey", "taskType": "authentication"}]}


def test_an_authentication_task_first_is_a_key_too(sandbox):
    task = new_task()
    reply = sandbox.post({"taskType": "authentication", "apiKey": sandbox.key}, task, key=None)
    assert reply.status_code == 200
    assert reply.json()["data"][0]["taskUUID"] == task["taskUUID"]
    empty = sandbox.post({"taskType": "authentication", "apiKey": ""}, new_task(), key=None)
    assert empty.status_code == 401


@pytest.mark.parametrize("raw", [b'{"taskType": "imageInference"}', b"[]", b"not json", b'"x"'])
def test_the_body_must_be_a_non_empty_array(sandbox, raw):
    reply = sandbox.post(raw=raw)
    assert reply.status_code == 400
    assert reply.json()["errors"][0]["code"] == "invalidRequestBody"


def test_sync_results_come_inline_one_item_per_image(sandbox):
    task = new_task(numberResults=3, seed=7)
    reply = sandbox.post(task)
    assert reply.status_code == 200
    body = reply.json()
    assert list(body) == ["data"]
    items = body["data"]
    assert [item["seed"] for item in items] == [7, 8, 9]
    assert len({item["imageUUID"] for item in items}) == 3
    for item in items:
        assert item["taskType"] == "imageInference" and item["taskUUID"] == task["taskUUID"]
        assert "cost" not in item and "status" not in item
        assert item["imageURL"].endswith(f"/sandbox/v1/images/{item['imageUUID']}.jpg")
        image = requests.get(item["imageURL"], timeout=10)
        assert image.status_code == 200 and image.headers["Content-Type"] == "image/jpeg"
        assert decode(image.content).size == (512, 384)
    assert len(parse_delivery(body).results) == 3  # our own receiver's schema accepts it


def test_include_cost_adds_the_estimated_cost_to_each_result(sandbox):
    reply = sandbox.post(new_task(numberResults=2, includeCost=True, width=2048, height=1024))
    assert [item["cost"] for item in reply.json()["data"]] == [cost_per_image(2048, 1024, 4)] * 2


def test_without_a_seed_each_result_gets_its_own_random_32_bit_seed(sandbox):
    seeds = [item["seed"] for item in sandbox.post(new_task(numberResults=6)).json()["data"]]
    assert len(set(seeds)) == 6
    assert all(0 <= seed <= RANDOM_SEED_MAX for seed in seeds)


def test_safety_adds_nsfw_content(sandbox):
    item = sandbox.post(new_task(safety={"checkContent": True})).json()["data"][0]
    assert item["NSFWContent"] is False


def test_a_dry_run_prices_without_generating(sandbox):
    task = new_task(numberResults=3)
    reply = sandbox.post(task, headers={"X-Runware-Dry-Run": "1"})
    assert reply.json() == {"data": [{"taskType": "imageInference",
                                      "taskUUID": task["taskUUID"], "cost": 0.0018}]}
    assert sandbox.poll(task["taskUUID"]).status_code == 404


# --- validation: the receiver's own rule set, as Runware's errors ------------------------------


@pytest.mark.parametrize("fields, parameter, code", [
    ({"positivePrompt": None}, "positivePrompt", "missingPositivePrompt"),
    ({"positivePrompt": "x"}, "positivePrompt", "invalidPositivePromptLength"),
    ({"width": 500}, "width", "invalidWidth"),
    ({"height": 4100}, "height", "invalidHeight"),
    ({"steps": 0}, "steps", "invalidSteps"),
    ({"CFGScale": 51}, "CFGScale", "invalidCFGScale"),
    ({"model": "runware:100@1"}, "model", "invalidModel"),
    ({"outputFormat": "gif"}, "outputFormat", "invalidOutputFormat"),
    ({"numberResults": 21}, "numberResults", "invalidNumberResults"),
    ({"ttl": 59}, "ttl", "invalidTtl"),
    ({"scheduler": "euler"}, "scheduler", "invalidScheduler"),
    ({"lora": [{"model": "civitai:1@2", "weight": 5}]}, "lora[0].weight", "invalidLora"),
    ({"webhookURL": "ftp://example.org/x"}, "webhookURL", "invalidWebhookURL"),
    ({"guidance": 3}, "guidance", "unknownParameter"),
])
def test_invalid_tasks_get_runware_errors_naming_the_parameter(sandbox, fields, parameter, code):
    task = new_task(**fields)
    reply = sandbox.post(task)
    assert reply.status_code == 400
    errors = reply.json()["errors"]
    assert reply.json()["data"] == []  # an errors-only reply keeps its empty data
    error = next(e for e in errors if e["parameter"] == parameter)
    assert error["code"] == code
    assert error["taskType"] == "imageInference" and error["taskUUID"] == task["taskUUID"]
    assert parameter in error["message"]


def test_a_task_uuid_must_be_a_uuid_v4(sandbox):
    errors = sandbox.post(new_task(taskUUID="not-a-uuid")).json()["errors"]
    assert errors[0]["parameter"] == "taskUUID" and errors[0]["taskUUID"] == "not-a-uuid"


@pytest.mark.parametrize("task_type", ["imageUpscale", None, 3])
def test_other_task_types_are_unsupported(sandbox, task_type):
    reply = sandbox.post({"taskType": task_type, "taskUUID": str(uuid.uuid4())})
    assert reply.status_code == 400
    assert reply.json()["errors"][0]["code"] == "unsupportedTaskType"
    assert reply.json()["errors"][0]["parameter"] == "taskType"


def test_a_batch_can_partly_succeed(sandbox):
    good, bad = new_task(), new_task(steps=99)
    reply = sandbox.post(good, bad, {"taskType": "videoInference"})
    assert reply.status_code == 200
    body = reply.json()
    assert [item["taskUUID"] for item in body["data"]] == [good["taskUUID"]]
    assert [e["code"] for e in body["errors"]] == ["invalidSteps", "unsupportedTaskType"]
    assert body["errors"][0]["taskUUID"] == bad["taskUUID"]


# --- webhooks -----------------------------------------------------------------------------


def test_webhooks_ack_at_once_then_one_post_per_result(sandbox, capture):
    sandbox.app.config["RUNWARE_SANDBOX_RESULT_DELAY"] = 0.3
    task = new_task(deliveryMethod="async", numberResults=3, seed=40, includeCost=True,
                    webhookURL=f"{capture.url}/hook?token=abc")
    started = time.monotonic()
    reply = sandbox.post(task)
    assert time.monotonic() - started < 0.3
    assert reply.status_code == 200
    assert reply.json() == {"data": [{"taskType": "imageInference",
                                      "taskUUID": task["taskUUID"]}]}
    assert capture.received == []  # nothing has finished yet
    received = capture.wait(3)
    assert [r.path for r in received] == ["/hook?token=abc"] * 3
    assert all(r.method == "POST" and r.headers["Content-Type"] == "application/json"
               for r in received)
    items = [r.json() for r in received]  # the flat result object, Runware's own shape
    assert all("data" not in item and item["taskUUID"] == task["taskUUID"] for item in items)
    assert sorted(item["seed"] for item in items) == [40, 41, 42]
    assert len({item["imageUUID"] for item in items}) == 3
    assert all(item["cost"] == 0.0006 for item in items)
    assert received[1].at - received[0].at > 0.15  # each as it finishes, not all at once
    for r in received:
        assert len(parse_delivery(r.json()).results) == 1


def test_a_failing_webhook_is_retried_with_backoff(sandbox, capture_factory):
    capture = capture_factory(statuses=[500, 503, 404])
    task = new_task(deliveryMethod="async", webhookURL=f"{capture.url}/hook")
    sandbox.post(task)
    received = capture.wait(4)
    assert len(received) == 4
    assert len({r.body for r in received}) == 1  # the same delivery each time
    gaps = [b.at - a.at for a, b in zip(received, received[1:])]
    base = sandbox.app.config["RUNWARE_SANDBOX_RETRY_BASE"]
    for attempt, gap in enumerate(gaps, start=1):
        assert gap >= base * 2 ** (attempt - 1) / 2 - 0.005
    image_uuid = received[0].json()["imageUUID"]
    assert wait_until(lambda: sandbox.state.item(image_uuid).webhook == "delivered")
    log = sandbox.state.attempts(image_uuid)
    assert [(a["attempt"], a["status_code"]) for a in log] == [
        (1, 500), (2, 503), (3, 404), (4, 200)]


def test_attempts_are_bounded(sandbox, capture_factory):
    capture = capture_factory(default=500)
    sandbox.post(new_task(deliveryMethod="async", webhookURL=f"{capture.url}/hook"))
    received = capture.wait(MAX_ATTEMPTS)
    image_uuid = received[0].json()["imageUUID"]
    assert wait_until(lambda: sandbox.state.item(image_uuid).webhook == "failed")
    time.sleep(0.3)  # longer than the capped backoff: no further attempt comes
    assert len(capture.received) == MAX_ATTEMPTS


def test_a_webhook_that_times_out_is_retried(sandbox, capture_factory):
    sandbox.app.config["RUNWARE_SANDBOX_WEBHOOK_TIMEOUT"] = 0.2
    capture = capture_factory(slow_first=0.6)
    sandbox.post(new_task(deliveryMethod="async", webhookURL=f"{capture.url}/hook"))
    received = capture.wait(2)
    image_uuid = received[0].json()["imageUUID"]
    assert wait_until(lambda: sandbox.state.item(image_uuid).webhook == "delivered")
    log = sandbox.state.attempts(image_uuid)
    assert log[0]["error"] == "ReadTimeout" and log[-1]["status_code"] == 200


def test_an_unreachable_webhook_is_retried_then_given_up(sandbox, capture_factory):
    closed = capture_factory()
    url = closed.url
    closed.close()
    task = new_task(deliveryMethod="async", webhookURL=f"{url}/hook")
    sandbox.post(task)
    image_uuid = sandbox.state.items(task["taskUUID"])[0].image_uuid
    assert wait_until(lambda: sandbox.state.item(image_uuid).webhook == "failed")
    assert [a["error"] for a in sandbox.state.attempts(image_uuid)] == ["ConnectionError"] * 4


# --- async and getResponse ----------------------------------------------------------------


def test_get_response_is_cumulative(sandbox):
    clock = sandbox.freeze()
    sandbox.app.config["RUNWARE_SANDBOX_RESULT_DELAY"] = 1.0
    task = new_task(numberResults=3, deliveryMethod="async", outputType="base64Data")
    ack = sandbox.post(task)
    assert ack.json() == {"data": [{"taskType": "imageInference",
                                    "taskUUID": task["taskUUID"]}]}

    def statuses():
        reply = sandbox.poll(task["taskUUID"])
        assert reply.status_code == 200
        return reply.json()["data"]

    first = statuses()
    assert [item["status"] for item in first] == ["processing"] * 3
    assert all("imageUUID" not in item for item in first)
    clock.advance(1.5)
    second = statuses()
    assert [item["status"] for item in second] == ["success", "processing", "processing"]
    assert 0 < second[1]["progress"] < 100
    clock.advance(2)
    third = statuses()
    assert [item["status"] for item in third] == ["success"] * 3
    assert third[0] == second[0]  # replies are cumulative: the first result is unchanged
    assert len({item["imageUUID"] for item in third}) == 3
    assert all(decode(base64.b64decode(item["imageBase64Data"])).format == "JPEG"
               for item in third)
    assert len(parse_delivery({"data": third}).results) == 3


def test_failed_generations_show_in_get_response_errors(sandbox):
    task = new_task(numberResults=2, deliveryMethod="async")
    sandbox.post(task, faults="fail=1")
    assert wait_until(lambda: "errors" in sandbox.poll(task["taskUUID"]).json())
    time.sleep(0.05)
    reply = sandbox.poll(task["taskUUID"])
    assert reply.status_code == 200
    errors = reply.json()["errors"]
    assert len(errors) == 2
    for error in errors:
        assert error["status"] == "error" and error["taskUUID"] == task["taskUUID"]
        assert error["code"] and error["message"] and error["documentation"]


def test_get_response_for_an_unknown_task(sandbox):
    reply = sandbox.poll(str(uuid.uuid4()))
    assert reply.status_code == 404
    assert reply.json()["errors"][0]["code"] == "taskNotFound"
    assert sandbox.post({"taskType": "getResponse"}).status_code == 400


# --- uploads, outputs, ttl ----------------------------------------------------------------


def test_upload_endpoint_gets_the_raw_bytes_before_the_webhook(sandbox, capture):
    task = new_task(deliveryMethod="async", numberResults=2, outputFormat="PNG", webhookURL=f"{capture.url}/hook",
                    uploadEndpoint=f"{capture.url}/bucket/object?sig=1")
    sandbox.post(task)
    received = capture.wait(4)
    puts = [r for r in received if r.method == "PUT"]
    posts = [r for r in received if r.method == "POST"]
    assert len(puts) == 2 and len(posts) == 2
    for put in puts:
        assert put.path == "/bucket/object?sig=1"
        assert put.headers["Content-Type"] == "image/png"
        assert decode(put.body).format == "PNG"
    for post in posts:
        url = post.json()["imageURL"]
        served = requests.get(url, timeout=10).content
        put = next(p for p in puts if p.body == served)
        assert put.at <= post.at


@pytest.mark.parametrize("output_format, pillow_format, content_type", [
    ("JPG", "JPEG", "image/jpeg"), ("PNG", "PNG", "image/png"), ("WEBP", "WEBP", "image/webp"),
    ("webp", "WEBP", "image/webp"), ("jpg", "JPEG", "image/jpeg")])
@pytest.mark.parametrize("output_type", ["URL", "base64Data", "dataURI"])
def test_every_output_type_and_format_decodes(sandbox, output_type, output_format,
                                               pillow_format, content_type):
    task = new_task(outputType=output_type, outputFormat=output_format, width=256, height=128)
    item = sandbox.post(task).json()["data"][0]
    fields = {"imageURL", "imageBase64Data", "imageDataURI"} & set(item)
    assert len(fields) == 1
    if output_type == "URL":
        reply = requests.get(item["imageURL"], timeout=10)
        assert reply.headers["Content-Type"] == content_type
        data = reply.content
    elif output_type == "base64Data":
        data = base64.b64decode(item["imageBase64Data"], validate=True)
    else:
        prefix = f"data:{content_type};base64,"
        assert item["imageDataURI"].startswith(prefix)
        data = base64.b64decode(item["imageDataURI"][len(prefix):], validate=True)
    image = decode(data)
    assert image.format == pillow_format and image.size == (256, 128)


def test_output_quality_is_used(sandbox):
    sizes = [len(base64.b64decode(sandbox.post(new_task(
        outputType="base64Data", outputQuality=quality, seed=1)).json()["data"][0]
        ["imageBase64Data"])) for quality in (20, 99)]
    assert sizes[0] < sizes[1] / 2


def test_ttl_with_inline_output_is_accepted(sandbox):
    # The docs: ttl "has no effect on other output types"; it is not refused.
    reply = sandbox.post(new_task(outputType="base64Data", ttl=60))
    assert reply.status_code == 200, reply.text
    assert "imageBase64Data" in reply.json()["data"][0]


def test_hosted_urls_expire_after_ttl(sandbox):
    clock = sandbox.freeze()
    url = sandbox.post(new_task(ttl=60)).json()["data"][0]["imageURL"]
    other = sandbox.post(new_task()).json()["data"][0]["imageURL"]
    assert requests.get(url, timeout=10).status_code == 200
    clock.advance(59)
    assert requests.get(url, timeout=10).status_code == 200
    clock.advance(2)
    assert requests.get(url, timeout=10).status_code == 410
    assert requests.get(other, timeout=10).status_code == 200  # the default: a day
    assert not (Path(sandbox.state.images) / url.rsplit("/", 1)[1]).exists()  # swept
    clock.advance(24 * 3600)
    assert requests.get(other, timeout=10).status_code == 410


def test_unknown_or_unfinished_images_are_404(sandbox):
    clock = sandbox.freeze()
    sandbox.app.config["RUNWARE_SANDBOX_RESULT_DELAY"] = 5.0
    task = new_task(deliveryMethod="async")
    sandbox.post(task)
    image_uuid = sandbox.state.items(task["taskUUID"])[0].image_uuid
    base = sandbox.url + "/images/"
    assert requests.get(f"{base}{image_uuid}.jpg", timeout=10).status_code == 404
    clock.advance(6)
    assert requests.get(f"{base}{image_uuid}.jpg", timeout=10).status_code == 200
    assert requests.get(f"{base}{image_uuid}.png", timeout=10).status_code == 404
    assert requests.get(f"{base}{uuid.uuid4()}.jpg", timeout=10).status_code == 404


# --- the pictures -------------------------------------------------------------------------


def image_bytes(sandbox, **fields):
    item = sandbox.post(new_task(outputType="base64Data", **fields)).json()["data"][0]
    return base64.b64decode(item["imageBase64Data"])


@pytest.mark.parametrize("output_format", ["JPG", "PNG", "WEBP"])
def test_same_inputs_give_the_same_bytes_another_seed_another_picture(sandbox, output_format):
    same = [hashlib.sha256(image_bytes(sandbox, seed=123, outputFormat=output_format))
            .hexdigest() for _ in range(2)]
    other = hashlib.sha256(image_bytes(sandbox, seed=124, outputFormat=output_format))
    assert same[0] == same[1]
    assert other.hexdigest() != same[0]


def test_another_seed_is_visibly_different(sandbox):
    a, b = (decode(image_bytes(sandbox, seed=seed)).convert("RGB") for seed in (1, 2))
    mean_difference = sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3
    assert mean_difference > 20


@pytest.mark.parametrize("field, value", [
    ("positivePrompt", "another prompt"), ("negativePrompt", "blurry"), ("steps", 8),
    ("CFGScale", 7), ("scheduler", "Euler"), ("lora", [{"model": "civitai:1@2"}])])
def test_every_generation_input_changes_the_picture(sandbox, field, value):
    assert image_bytes(sandbox, seed=5) != image_bytes(sandbox, seed=5, **{field: value})


def test_the_picture_is_marked_sandbox():
    image = sandbox_render.render(new_task(width=1024, height=1024), 9)
    band = image.crop((0, 1024 - 128, 1024, 1024))
    colours = {colour for _, colour in band.getcolors(1 << 16)}
    assert (0, 0, 0) in colours and (255, 214, 0) in colours  # the yellow SANDBOX label


def test_rendering_1024_square_takes_tens_of_milliseconds():
    task = new_task(width=1024, height=1024, outputFormat="JPG")
    sandbox_render.render_bytes(task, 0)
    timings = []
    for seed in range(5):
        started = time.perf_counter()
        sandbox_render.render_bytes(task, seed)
        timings.append(time.perf_counter() - started)
    median = sorted(timings)[2]
    print(f"render + JPG encode of 1024x1024: {median * 1000:.1f} ms (median of 5)")
    assert median < 0.25


# --- a repeated taskUUID --------------------------------------------------------------------


def conflict_of(reply, task):
    """The ``conflictTaskUUID`` error of a reply (Runware/sdk-python ``runware/base.py``)."""
    assert reply.status_code == 400
    body = reply.json()
    assert body["data"] == []
    [error] = body["errors"]
    assert (error["code"], error["parameter"], error["taskUUID"]) == (
        "conflictTaskUUID", "taskUUID", task["taskUUID"])
    return error


def test_a_repeated_task_uuid_is_a_conflict_not_a_replay(sandbox):
    task = new_task(numberResults=2, includeCost=True)
    first, second = sandbox.post(task), sandbox.post(task)
    assert first.status_code == 200 and len(first.json()["data"]) == 2
    conflict_of(second, task)
    assert len(sandbox.state.items(task["taskUUID"])) == 2  # nothing generated again


def test_a_repeated_webhook_task_is_delivered_once(sandbox, capture):
    task = new_task(deliveryMethod="async", numberResults=3, webhookURL=f"{capture.url}/hook")
    first, *again = [sandbox.post(task) for _ in range(3)]
    assert first.json() == {"data": [{"taskType": "imageInference",
                                      "taskUUID": task["taskUUID"]}]}
    for reply in again:
        conflict_of(reply, task)
    capture.wait(3)
    time.sleep(0.3)
    assert len(capture.received) == 3


def test_a_task_uuid_reused_with_other_parameters_is_a_conflict_too(sandbox):
    task = new_task()
    sandbox.post(task)
    conflict_of(sandbox.post(dict(task, positivePrompt="something else entirely")), task)


def test_sync_with_a_webhook_answers_inline_and_posts_too(sandbox, capture):
    """Runware documents neither way; the sandbox does both, so the archive's dedupe is
    what keeps one copy (the README says so)."""
    task = new_task(deliveryMethod="sync", numberResults=2, webhookURL=f"{capture.url}/h")
    inline = sandbox.post(task).json()["data"]
    posted = [r.json() for r in capture.wait(2)]
    assert {i["imageUUID"] for i in inline} == {p["imageUUID"] for p in posted}


def test_state_is_shared_between_processes_through_sandbox_db(app, app_config, live_server):
    """A second app on the same data folder stands in for a second gunicorn worker."""
    other = LiveServer(create_app(app_config)).start()
    try:
        one, two = Sandbox(live_server), Sandbox(other)
        task = new_task(numberResults=2, deliveryMethod="async")
        assert one.post(task).status_code == 200
        conflict_of(two.post(task), task)  # the other worker knows the taskUUID
        assert wait_until(lambda: all(item["status"] == "success"
                                      for item in two.poll(task["taskUUID"]).json()["data"]))
        items = two.poll(task["taskUUID"]).json()["data"]
        assert items == one.poll(task["taskUUID"]).json()["data"]
        assert requests.get(items[0]["imageURL"].replace(live_server.url, other.url),
                            timeout=10).status_code == 200
    finally:
        other.stop()


# --- faults ---------------------------------------------------------------------------------


def test_duplicate_sends_each_result_twice(sandbox, capture):
    sandbox.post(new_task(deliveryMethod="async", numberResults=2, webhookURL=f"{capture.url}/h"), faults="duplicate=1")
    received = capture.wait(4)
    time.sleep(0.2)
    assert len(capture.received) == 4
    uuids = [r.json()["imageUUID"] for r in received]
    assert len(set(uuids)) == 2 and all(uuids.count(u) == 2 for u in uuids)


def test_wrapped_sends_the_result_inside_a_data_envelope(sandbox, capture):
    sandbox.post(new_task(deliveryMethod="async", webhookURL=f"{capture.url}/h"),
                 faults="wrapped=1")
    body = capture.wait(1)[0].json()
    assert list(body) == ["data"] and body["data"][0]["taskType"] == "imageInference"
    assert len(parse_delivery(body).results) == 1


@pytest.mark.parametrize("faults, shape", [("fail=1", "flat"), ("fail=1,wrapped=1", "wrapped")])
def test_fail_delivers_the_image_as_a_failed_item(sandbox, capture, faults, shape):
    task = new_task(deliveryMethod="async", webhookURL=f"{capture.url}/h")
    sandbox.post(task, faults=faults)
    body = capture.wait(1)[0].json()
    item = body["data"][0] if shape == "wrapped" else body
    assert item["status"] == "error" and item["taskUUID"] == task["taskUUID"]
    assert item["error"]["code"] == "timeoutProvider" and item["error"]["message"]
    assert item["imageUUID"] == sandbox.state.items(task["taskUUID"])[0].image_uuid
    [error] = parse_delivery(body).errors
    assert (error["code"], error["imageUUID"]) == ("timeoutProvider", item["imageUUID"])


def test_a_sync_reply_carries_failed_images_beside_the_good_ones(sandbox):
    # Seeded faults decide per taskUUID: with a random one, fail=0.5 failed all four
    # images or none one run in eight. This one, with seed 11, fails two of the four.
    task = new_task(numberResults=4, seed=1, taskUUID="5f0c3a7e-2b64-4d1e-9a8f-0c7b6e5d4a31")
    reply = sandbox.post(task, faults="fail=0.5,seed=11").json()
    kinds = sorted(item.get("status", "success") for item in reply["data"])
    assert "error" in kinds and "success" in kinds and "errors" not in reply
    delivery = parse_delivery(reply)
    assert len(delivery.results) + len(delivery.errors) == 4


def test_drop_first_forces_retries_the_receiver_never_sees(sandbox, capture):
    task = new_task(deliveryMethod="async", webhookURL=f"{capture.url}/h")
    sandbox.post(task, faults="drop_first=2")
    received = capture.wait(1)
    image_uuid = received[0].json()["imageUUID"]
    assert wait_until(lambda: sandbox.state.item(image_uuid).webhook == "delivered")
    log = sandbox.state.attempts(image_uuid)
    assert [a["status_code"] for a in log] == [None, None, 200]
    assert "drop_first" in log[0]["error"]
    assert len(capture.received) == 1


def test_shuffle_changes_the_finishing_order(sandbox, capture):
    sandbox.post(new_task(deliveryMethod="async", numberResults=6, seed=100, webhookURL=f"{capture.url}/h"),
                 faults="shuffle=1,seed=3")
    seeds = [r.json()["seed"] for r in capture.wait(6)]
    assert sorted(seeds) == list(range(100, 106)) and seeds != sorted(seeds)


def test_delay_makes_results_late(sandbox, capture):
    started = time.monotonic()
    sandbox.post(new_task(deliveryMethod="async", webhookURL=f"{capture.url}/h", numberResults=4),
                 faults="delay=0.5,seed=1")
    received = capture.wait(4)
    assert max(r.at for r in received) - started > 0.1


@pytest.mark.parametrize("faults, statuses", [
    ("submit_status=503:1", [503, 503, 200]),
    ("submit_429=1,submit_max=1", [429, 200]),
    ("submit_500=1,submit_max=0", [200]),
])
def test_submit_faults_answer_429_or_5xx_a_bounded_number_of_times(sandbox, faults, statuses):
    task = new_task()
    replies = [sandbox.post(task, faults=faults) for _ in statuses]
    assert [r.status_code for r in replies] == statuses
    for reply in replies[:-1]:
        assert reply.json()["errors"][0]["code"]
    assert len(sandbox.state.items(task["taskUUID"])) == 1


def test_a_lost_reply_is_followed_by_a_conflict_without_generating_twice(sandbox, capture):
    task = new_task(deliveryMethod="async", numberResults=2, webhookURL=f"{capture.url}/h")
    lost = sandbox.post(task, faults="reply_lost=1,submit_max=1")
    assert lost.status_code == 502
    conflict_of(sandbox.post(task, faults="reply_lost=1,submit_max=1"), task)
    capture.wait(2)
    time.sleep(0.2)
    assert len(capture.received) == 2


def test_faults_come_from_the_setting_and_the_header_wins(sandbox, capture):
    sandbox.app.config["RUNWARE_SANDBOX_FAULTS"] = "submit_503=1"
    assert sandbox.post(new_task()).status_code == 503
    assert sandbox.post(new_task(), faults="").status_code == 200
    assert sandbox.post(new_task(), faults="submit_429=1").status_code == 429


def test_our_client_retries_through_submit_faults(app, live_server):
    app.config["RUNWARE_SANDBOX_FAULTS"] = "submit_status=503:1,submit_max=1"
    reply = requests.post(f"{live_server.url}/api/tasks",
                          json={"positivePrompt": "a harbour at night", "numberResults": 2},
                          timeout=30)
    assert reply.status_code == 202
    task_uuid = reply.json()["taskUUID"]

    def stored():
        return requests.get(f"{live_server.url}/api/tasks/{task_uuid}", timeout=10).json()

    assert wait_until(lambda: stored()["resultsReceived"] == 2)
    task = stored()
    assert task["provider"] == "sandbox" and task["sandbox"] is True
    assert task["status"] == "complete" and task["cost"] == pytest.approx(0.0012)


def test_a_bad_fault_header_is_refused(sandbox):
    reply = sandbox.post(new_task(), faults="explode=1")
    assert reply.status_code == 400
    assert reply.json()["errors"][0]["code"] == "invalidSandboxFaults"


def test_the_fault_syntax():
    faults = parse_faults(" duplicate=0.3, shuffle=1,delay=0.05,drop_first=2,"
                          "submit_status=503:0.5,submit_429=0.2,fail=0.1,wrapped=1,seed=42,"
                          "reply_lost=0.1,submit_max=3")
    assert (faults.duplicate, faults.shuffle, faults.delay, faults.drop_first) == (
        0.3, 1.0, 0.05, 2)
    assert faults.submit == {503: 0.5, 429: 0.2}
    assert (faults.fail, faults.wrapped, faults.seed, faults.reply_lost, faults.submit_max) == (
        0.1, 1.0, 42, 0.1, 3)
    assert parse_faults("") == parse_faults(None) == parse_faults(" , ")
    assert parse_faults("submit_status=502").submit == {502: 1.0}
    seeded = parse_faults("seed=7,duplicate=0.5")
    assert [seeded.chance("duplicate", n) for n in range(20)] == [
        parse_faults("seed=7,duplicate=0.5").chance("duplicate", n) for n in range(20)]


@pytest.mark.parametrize("text", ["duplicate=2", "duplicate", "nope=1", "submit_status=200:1",
                                  "submit_418=1", "drop_first=-1", "delay=abc", "seed=x"])
def test_bad_fault_syntax_says_what_is_wrong(text):
    with pytest.raises(FaultSyntaxError):
        parse_faults(text)


# --- mounting -------------------------------------------------------------------------------


def test_with_a_key_the_sandbox_is_not_mounted(app_config, monkeypatch):
    for key in settings.DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    app = create_app({**app_config, "RUNWARE_API_KEY": "real-key"})
    assert "sandbox" not in app.extensions
    assert app.test_client().post(settings.SANDBOX_PATH, json=[new_task()]).status_code == 404


def test_without_a_key_the_sandbox_state_is_in_the_data_folder(app, data_dir):
    assert (data_dir / "sandbox.db").exists() and (data_dir / "sandbox-images").is_dir()
    assert settings.provider_url(app.config).endswith(settings.SANDBOX_PATH)


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data", "http://10.0.0.8:8080/hook",
    "http://internal.example/hook", "https://[fd00::1]/hook",
])
def test_the_sandbox_calls_back_only_this_service_or_loopback(client, url):
    task = {"taskType": "imageInference", "taskUUID": str(uuid.uuid4()),
            "model": "runware:twinflow-z-image-turbo@0", "positivePrompt": "a harbor",
            "width": 256, "height": 256, "webhookURL": url}
    for field in ("webhookURL", "uploadEndpoint"):
        body = dict(task, taskUUID=str(uuid.uuid4()))
        if field == "uploadEndpoint":
            body = dict(body, uploadEndpoint=body.pop("webhookURL"))
        response = client.post("/sandbox/v1", json=[body], headers={
            "Authorization": f"Bearer {sandbox_key(client.application.config)}"})
        assert response.status_code == 400
        error = response.get_json()["errors"][0]
        assert (error["code"], error["parameter"]) == ("invalidCallbackURL", field)


# --- no door, no relay ----------------------------------------------------------------------


@pytest.mark.parametrize("password", [None, "correct horse"])
def test_only_the_sandbox_key_or_the_ui_password_opens_it(sandbox, password):
    sandbox.app.config["RUNWARE_ARCHIVE_UI_PASSWORD"] = password
    assert sandbox.post(new_task(), key="any key at all").status_code == 401
    assert sandbox.post(new_task(), key=sandbox.key[:-1]).status_code == 401
    assert sandbox.post(new_task()).status_code == 200
    if password:
        assert sandbox.post(new_task(), key=password).status_code == 200
    key_file = Path(sandbox.app.config["RUNWARE_ARCHIVE_DIR"]) / "sandbox-key"
    assert key_file.stat().st_mode & 0o777 == 0o600


def test_the_archive_uses_the_sandbox_key_itself(live_server):
    reply = requests.post(f"{live_server.url}/api/tasks", timeout=10,
                          json={"positivePrompt": "a copper aviary", "width": 256, "height": 256})
    assert reply.status_code == 202, reply.text


def own_route(live_server, kind, task_uuid):
    route = settings.WEBHOOK_ROUTE if kind == "webhookURL" else settings.UPLOAD_ROUTE
    return live_server.url + route.format(task_uuid=task_uuid) + "?token=x"


@pytest.mark.parametrize("field", ["webhookURL", "uploadEndpoint"])
def test_callbacks_go_only_to_this_services_own_route_for_the_task(sandbox, live_server,
                                                                   capture_factory, field):
    task = new_task(deliveryMethod="async")
    other = str(uuid.uuid4())
    for url in (f"{live_server.url}/api/tasks", f"{live_server.url}/sandbox/v1",
                own_route(live_server, field, other),  # another task's route
                "http://127.0.0.1:1/admin", "http://localhost:9200/_shutdown"):
        reply = sandbox.post(dict(task, taskUUID=str(uuid.uuid4()), **{field: url}))
        assert reply.status_code == 400, url
        assert reply.json()["errors"][0]["code"] == "invalidCallbackURL"
    allowed = dict(task, **{field: own_route(live_server, field, task["taskUUID"])})
    assert sandbox.post(allowed).status_code == 200
    capture = capture_factory()  # named in RUNWARE_SANDBOX_CALLBACKS
    assert sandbox.post(new_task(deliveryMethod="async",
                                 **{field: f"{capture.url}/x"})).status_code == 200


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_past_the_cap_is_413(sandbox, chunked):
    sandbox.app.config["RUNWARE_SANDBOX_MAX_BODY_BYTES"] = 10_000
    big = json.dumps([new_task(positivePrompt="x" * 20_000)]).encode()
    data = iter([big[:5000], big[5000:]]) if chunked else big
    reply = requests.post(sandbox.url, data=data, timeout=10, headers={
        "Authorization": f"Bearer {sandbox.key}", "Content-Type": "application/json"})
    assert reply.status_code == 413
    assert reply.json()["errors"][0]["code"] == "requestTooLarge"


def test_too_many_pixels_in_one_request_is_429(sandbox):
    reply = sandbox.post(new_task(numberResults=20, width=2048, height=2048))
    assert reply.status_code == 429 and reply.headers["Retry-After"]
    assert reply.json()["errors"][0]["code"] == "rateLimitExceeded"
    assert sandbox.post(new_task(numberResults=20, width=1024, height=1024)).status_code == 200


def test_a_full_queue_is_429_until_work_is_done(sandbox):
    sandbox.app.config["RUNWARE_SANDBOX_MAX_PENDING_PIXELS"] = 3 * 512 * 384
    clock = sandbox.freeze()
    assert sandbox.post(new_task(numberResults=2, deliveryMethod="async")).status_code == 200
    assert sandbox.post(new_task(numberResults=2, deliveryMethod="async")).status_code == 429
    clock.advance(60)  # everything has finished
    assert sandbox.post(new_task(numberResults=2, deliveryMethod="async")).status_code == 200


@pytest.mark.parametrize("fields", [{"width": 0}, {"height": -16}, {"width": 4096},
                                    {"height": 100_000}])
def test_sizes_the_sandbox_will_not_render_are_refused(sandbox, fields):
    reply = sandbox.post(new_task(**fields))
    assert reply.status_code == 400
    [error] = reply.json()["errors"]
    assert error["parameter"] == next(iter(fields)) and "128 and 2048" in error["message"]
