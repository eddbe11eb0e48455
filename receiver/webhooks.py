"""The webhook receiver: verify a delivery, store it once, acknowledge only after commit.

Checks run cheapest and most damning first: the token (before a byte of the body is
read), the size, the content type, JSON, the payload schema, the task it claims. Every
refusal is logged (without the token); a database that cannot take the write answers 503
so Runware retries, and never a 2xx for something not stored.
"""

import json
import sqlite3
import time

from flask import Blueprint, current_app, jsonify, request
from marshmallow import ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from archive.catalogue import ForeignResult, UnknownTask, elide_inline
from receiver import get_catalogue, get_secret
from receiver.archiving import inline_prepare
from receiver.ops import INGEST_SECONDS
from receiver.schemas import parse_delivery, validation_errors
from receiver.tokens import TokenError, verify_token

bp = Blueprint("webhooks", __name__)


class Refusal(Exception):
    """A delivery refused with ``status`` for ``reason``."""

    def __init__(self, status, reason, errors=None):
        super().__init__(reason)
        self.status, self.reason, self.errors = status, reason, errors


@bp.post("/webhooks/runware/<task_uuid>")
def receive(task_uuid):
    """Take one delivery for ``task_uuid``: ``{"data": [...]}``, ``{"errors": [...]}`` or
    a bare result object (runware-api.md §4)."""
    catalogue = get_catalogue()
    started, body = time.perf_counter(), None
    try:
        check_token(task_uuid)
        body = read_body()
        check_content_type()
        delivery = parse_body(body)
        outcome = catalogue.ingest(
            task_uuid, results=delivery.results, errors=delivery.errors,
            source="webhook", raw_body=loggable(body, delivery),
            remote_addr=request.remote_addr, prepare=inline_prepare(current_app),
        )
    except Refusal as refusal:
        return refuse(task_uuid, refusal, body)
    except ForeignResult as exc:
        return refuse(task_uuid, Refusal(409, str(exc)), body)
    except UnknownTask:
        return refuse(task_uuid, Refusal(404, "unknown task"), body)
    except sqlite3.Error as exc:
        return unavailable(exc)
    INGEST_SECONDS.observe(time.perf_counter() - started)
    return jsonify(
        taskUUID=task_uuid, verdict=outcome.verdict, new=len(outcome.new),
        duplicates=len(outcome.duplicates), status=outcome.status,
    ), 200


def check_token(task_uuid):
    """The token in the query string must be this task's (constant-time compare)."""
    try:
        verify_token(request.args.get("token"), task_uuid, secret=get_secret())
    except TokenError as exc:
        raise Refusal(exc.status, str(exc)) from None


def read_body():
    """The body as bytes, refused past the cap, with or without Content-Length.

    Werkzeug stops a chunked body at ``max_content_length`` without saying so, so the
    stream is allowed one byte more than the cap: getting it means the body is too big.
    """
    cap = current_app.config["RUNWARE_ARCHIVE_MAX_DELIVERY_BYTES"]
    request.max_content_length = cap + 1
    chunks, size = [], 0
    try:
        while size <= cap:
            chunk = request.stream.read(min(cap + 1 - size, 1 << 20) or 1)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except RequestEntityTooLarge:
        raise Refusal(413, "body over the size limit") from None
    if size > cap:
        raise Refusal(413, "body over the size limit")
    return b"".join(chunks)


def check_content_type():
    """Runware posts JSON; anything that says otherwise is refused."""
    if request.mimetype != "application/json":
        raise Refusal(415, f"content type {request.mimetype or 'missing'}, not application/json")


def parse_body(body):
    """Decode JSON and load it with the delivery schema."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise Refusal(400, f"malformed JSON: {exc}") from None
    try:
        return parse_delivery(payload)
    except ValidationError as exc:
        errors = validation_errors(exc)
        summary = "; ".join(f"{e['parameter']}: {e['message']}" for e in errors[:5])
        raise Refusal(400, f"invalid payload: {summary}", errors) from None


def loggable(body, delivery):
    """What the delivery log keeps of an accepted body: as received, unless it carries
    inline image data, which is elided (the image store keeps the image)."""
    inline = any("imageBase64Data" in r or "imageDataURI" in r for r in delivery.results)
    if not inline:
        return body
    return json.dumps({"data": [elide_inline(r) for r in delivery.results],
                       "errors": delivery.errors})


def refuse(task_uuid, refusal, body):
    """Log a refused delivery and answer with Runware-style ``errors``."""
    try:
        get_catalogue().log_rejection(
            source="webhook", reason=refusal.reason, status_code=refusal.status,
            task_uuid=task_uuid[:64], raw_body=body, remote_addr=request.remote_addr,
        )
    except sqlite3.Error:
        current_app.logger.warning("could not log a refused delivery (database busy)")
    errors = refusal.errors or [{"code": "refused", "message": refusal.reason}]
    return jsonify(errors=errors), refusal.status


def unavailable(exc):
    """503 with Retry-After: the catalogue could not take the write, so nothing was
    stored and the provider must try again."""
    current_app.logger.warning("webhook not stored, database unavailable: %s", exc)
    response = jsonify(errors=[{"code": "unavailable",
                                "message": "the catalogue is busy; retry shortly"}])
    response.headers["Retry-After"] = "1"
    return response, 503
