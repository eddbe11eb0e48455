"""The sandbox's outbound side: per-result webhooks and ``uploadEndpoint`` PUTs, off the request
path.

Each result "finishes" at its planned time; then its bytes are PUT to the task's
``uploadEndpoint`` (if any) and one POST per result goes to the ``webhookURL`` (runware-api.md
§4, §6). A non-2xx answer, a timeout or a refused connection is retried with Runware's
schedule: 250 ms doubling to 8 s, each wait jittered to between half and all of it, up to a
bounded number of attempts (``RUNWARE_SANDBOX_RETRY_BASE``, ``_RETRY_CAP``,
``_MAX_ATTEMPTS``). The work runs on a few daemon threads of the process that accepted the
task, fed by a time-ordered queue, so a slow or failing receiver never holds up a request.
The queue is in memory: deliveries still queued when that process exits are not sent (the
plan in ``sandbox.db`` keeps them visible to ``getResponse``, which is how a client recovers).
"""

import base64
import heapq
import itertools
import json
import logging
import os
import random
import threading
import time

import requests

from archive.pricing import cost_per_image
from sandbox import render as sandbox_render
from sandbox.faults import parse_faults
from sandbox.state import extension
from protocol.schemas import DEFAULT_STEPS

log = logging.getLogger(__name__)
WORKERS = 8
DUPLICATE_WITHIN = 0.05  # seconds after the original that a duplicate is sent
HEADERS = {"Content-Type": "application/json", "User-Agent": "runware-archive-sandbox"}
ERRORS_DOC = "https://runware.ai/docs/platform/errors"
FAIL_CODE = "timeoutProvider"  # the code Runware's errors page gives as its example


def result_item(state, task, item, *, status=None):
    """The Runware result object (§3) for a finished ``item`` of ``task``."""
    params = task.task
    out = {"taskType": "imageInference", "taskUUID": task.task_uuid,
           "imageUUID": item.image_uuid}
    output_type = params.get("outputType", "URL")
    if output_type == "URL":
        out["imageURL"] = f"{task.images_url}{item.image_uuid}.{extension(task)}"
    else:
        data = base64.b64encode(state.image_bytes(task, item)).decode("ascii")
        if output_type == "base64Data":
            out["imageBase64Data"] = data
        else:
            kind = sandbox_render.content_type(params.get("outputFormat"))
            out["imageDataURI"] = f"data:{kind};base64,{data}"
    out["seed"] = item.seed
    if params.get("safety", {}).get("checkContent"):
        out["NSFWContent"] = False  # a sandbox picture is never unsafe
    if params.get("includeCost"):
        out["cost"] = cost_per_image(params["width"], params["height"],
                                     params.get("steps", DEFAULT_STEPS), at=task.created_at)
    if status:
        out["status"] = status
    return out


def error_item(task, item):
    """The flat error object of ``getResponse``'s ``errors[]`` (§5) for a generation the
    ``fail`` fault made fail."""
    return {"taskType": "imageInference", "taskUUID": task.task_uuid, "status": "error",
            "code": FAIL_CODE, "message": fail_message(item), "documentation": ERRORS_DOC}


def failed_item(task, item):
    """The same failure as an item of ``data[]``, as webhooks and sync replies carry it:
    ``{"status": "error", "error": {...}}`` naming the image (Runware/runware-python
    ``tests/test_rest_polling.py`` ``TestPerItemErrors``)."""
    return {"taskType": "imageInference", "taskUUID": task.task_uuid,
            "imageUUID": item.image_uuid, "status": "error",
            "error": {"code": FAIL_CODE, "message": fail_message(item),
                      "documentation": ERRORS_DOC}}


def fail_message(item):
    """What a generation failed by the ``fail`` fault says."""
    return (f"Sandbox fault 'fail': generation {item.position + 1} of this task failed on "
            "purpose.")


class Scheduler:
    """Runs ``fn(*args)`` after a delay on a few daemon worker threads (started lazily, and
    again after a fork, since threads do not survive one)."""

    def __init__(self, workers=WORKERS):
        self.workers = workers
        self._pid = None
        self._guard = threading.Lock()

    def at(self, delay, fn, *args):
        """Queue ``fn(*args)`` to run ``delay`` seconds from now."""
        self._ensure_started()
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay),
                                        next(self._order), fn, args))
            self._cond.notify()

    def _ensure_started(self):
        with self._guard:
            if self._pid == os.getpid():
                return
            self._pid, self._heap, self._order = os.getpid(), [], itertools.count()
            self._cond = threading.Condition()
            for n in range(self.workers):
                threading.Thread(target=self._run, name=f"sandbox-delivery-{n}",
                                 daemon=True).start()

    def _next(self):
        with self._cond:
            while not self._heap or self._heap[0][0] > time.monotonic():
                self._cond.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
            _, _, fn, args = heapq.heappop(self._heap)
            if self._heap:
                self._cond.notify()  # someone else must now watch the new head
            return fn, args

    def _run(self):
        while True:
            fn, args = self._next()
            try:
                fn(*args)
            except Exception:  # a worker must outlive one bad job; the failure is logged
                log.exception("sandbox delivery job %s failed", getattr(fn, "__name__", fn))


class Deliverer:
    """Sends a task's results out as they finish, with retries and the task's faults.

    :param config: the app's config, read at each use so tests can tune the timings.
    """

    def __init__(self, state, config, scheduler=None):
        self.state, self.config = state, config
        self.scheduler = scheduler or Scheduler()

    def start(self, task):
        """Schedule each item of ``task`` that has somewhere to go, at its finishing time."""
        now = self.state.clock()
        for item in self.state.items(task.task_uuid):
            if item.webhook or item.upload:
                self.scheduler.at(item.ready_at - now, self.finish, task, item)

    def finish(self, task, item):
        """The item is done: render it, then upload it, then announce it."""
        if item.outcome == "success":
            self.state.image_bytes(task, item)
        if item.upload:
            self.upload(task, item, 1)
        elif item.webhook:
            self.post(task, item, 1)

    def upload(self, task, item, attempt):
        """One PUT of the raw bytes to ``uploadEndpoint``; the webhook follows it."""
        if self._send("upload", task, item, attempt):
            self.state.mark(item.image_uuid, "upload", "delivered")
        elif attempt < self.config["RUNWARE_SANDBOX_MAX_ATTEMPTS"]:
            self.scheduler.at(self.backoff(attempt), self.upload, task, item, attempt + 1)
            return
        else:
            self.state.mark(item.image_uuid, "upload", "failed")
        if item.webhook:
            self.post(task, item, 1)

    def post(self, task, item, attempt):
        """One webhook POST; retried on failure, maybe duplicated on success."""
        faults = parse_faults(task.faults)
        if self._send("webhook", task, item, attempt):
            self.state.mark(item.image_uuid, "webhook", "delivered")
            if faults.chance("duplicate", item.image_uuid):
                self.scheduler.at(random.uniform(0, DUPLICATE_WITHIN), self._send,
                                  "duplicate", task, item, 1)
        elif attempt < self.config["RUNWARE_SANDBOX_MAX_ATTEMPTS"]:
            self.scheduler.at(self.backoff(attempt), self.post, task, item, attempt + 1)
        else:
            self.state.mark(item.image_uuid, "webhook", "failed")

    def backoff(self, attempt):
        """Seconds before attempt ``attempt + 1``: base × 2^(attempt−1), capped, jittered."""
        base = self.config["RUNWARE_SANDBOX_RETRY_BASE"]
        wait = min(self.config["RUNWARE_SANDBOX_RETRY_CAP"], base * 2 ** (attempt - 1))
        return random.uniform(wait / 2, wait)

    def body(self, task, item, faults):
        """The webhook body: the flat result or failed item, or (fault ``wrapped``) the same
        item inside ``{"data": [...]}``."""
        if item.outcome == "success":
            payload = result_item(self.state, task, item)
        else:
            payload = failed_item(task, item)
        return {"data": [payload]} if faults.chance("wrapped", item.image_uuid) else payload

    def _send(self, kind, task, item, attempt):
        """Make one attempt of ``kind`` (webhook, duplicate, upload) and log it; True on 2xx."""
        faults = parse_faults(task.faults)
        if kind != "duplicate" and attempt <= faults.drop_first:
            self.state.log_attempt(item.image_uuid, kind, attempt,
                                   error="dropped before sending (fault drop_first)")
            return False
        if kind != "duplicate" and faults.chance("drop", item.image_uuid, kind, attempt):
            self.state.log_attempt(item.image_uuid, kind, attempt,
                                   error="dropped before sending (fault drop)")
            return False
        timeout = self.config["RUNWARE_SANDBOX_WEBHOOK_TIMEOUT"]
        try:
            if kind == "upload":
                response = requests.put(
                    task.task["uploadEndpoint"], data=self.state.image_bytes(task, item),
                    headers={"Content-Type": sandbox_render.content_type(
                        task.task.get("outputFormat"))},
                    timeout=timeout, allow_redirects=False)
            else:
                response = requests.post(
                    task.task["webhookURL"], data=json.dumps(self.body(task, item, faults)),
                    headers=HEADERS, timeout=timeout, allow_redirects=False)
        except requests.RequestException as exc:
            self.state.log_attempt(item.image_uuid, kind, attempt, error=type(exc).__name__)
            return False
        self.state.log_attempt(item.image_uuid, kind, attempt, status_code=response.status_code)
        return 200 <= response.status_code < 300
