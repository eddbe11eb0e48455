"""The webhook receiver: verify a delivery, store it once, acknowledge only after commit.

Checks run cheapest and most damning first: the token (before a byte of the body is
read), the size, JSON, the payload schema, the task it claims. Every refusal is logged
(without the token); a database that cannot take the write answers 503 so Runware retries,
and never a 2xx for something not stored.

Runware documents no webhook headers, Content-Type included, so the body is parsed as JSON
whatever the header says and the header is kept in the delivery log (runware-api.md §4; a
production integration, deankerr/ig ``apps/server/src/providers/runware``, reads the body
without looking at the type). One item that cannot be read never costs the others: they are
stored, the answer and the log say which item was passed over and why.

This is the one route that takes load: Runware posts one request per image. It is
therefore a plain WSGI application in front of Flask (:class:`WebhookRoute`, installed by
``create_app``) rather than a Flask view: Flask's request context, session loading, URL
matching and response machinery cost more per request than everything below them except
the database (see the README's Performance section). The rules are the same as any view's:
the app's settings, its catalogue, its logger, the security headers of
:mod:`receiver.views.auth`, Runware-style ``errors`` in every refusal.
"""

import json
import re
import sqlite3
import time
from urllib.parse import parse_qsl

from marshmallow import ValidationError
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wsgi import get_input_stream

from archive.catalogue import ForeignResult, UnknownTask
from receiver.storage import inline_columns
from receiver.views.auth import SECURITY_HEADERS
from receiver.views.dashboard import costs_changed
from receiver.ops import INGEST_SECONDS
from protocol.deliveries import parse_delivery
from protocol.schemas import validation_errors
from receiver.provider.replies import ingest_delivery
from receiver.provider.tokens import TokenError, verify_token

PREFIX = "/webhooks/runware/"
ALLOW = "OPTIONS, POST"


class Refusal(Exception):
    """A delivery refused with ``status`` for ``reason``."""

    def __init__(self, status, reason, errors=None):
        super().__init__(reason)
        self.status, self.reason, self.errors = status, reason, errors


class WebhookRoute:
    """WSGI middleware: ``POST /webhooks/runware/<taskUUID>?token=…`` is answered here,
    every other request goes on to ``app`` (the Flask application's own ``wsgi_app``).

    :param flask_app: the Flask app whose settings, extensions and logger are used.
    :param app: the WSGI application behind this one.
    """

    def __init__(self, flask_app, app):
        self.flask_app, self.app = flask_app, app
        self.config, self.extensions = flask_app.config, flask_app.extensions
        self.logger = flask_app.logger
        self._columns_for = None

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if not path.startswith(PREFIX):
            return self.app(environ, start_response)
        task_uuid = path[len(PREFIX):].encode("latin-1").decode("utf-8", "replace")
        if not task_uuid or "/" in task_uuid:
            return self.app(environ, start_response)  # not a route of ours: Flask's 404
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "POST":
            try:
                status, body = self.receive(environ, task_uuid)
            except Exception:  # a bug must not take the worker down, nor answer 2xx
                self.logger.exception("webhook for %s failed", task_uuid[:64])
                status, body = 500, _errors([{"code": "internal",
                                               "message": "internal error; retry later"}])
            finally:
                self.extensions["catalogue"].release()  # as Flask's teardown does
            return _respond(start_response, status, body,
                            [("Retry-After", "1")] if status == 503 else ())
        if method == "OPTIONS":
            return _respond(start_response, 200, b"", [("Allow", ALLOW)], json_body=False)
        return _respond(start_response, 405, _errors([{
            "code": "methodNotAllowed", "message": f"{method} not allowed; POST a delivery"}]),
            [("Allow", ALLOW)])

    def receive(self, environ, task_uuid):
        """Take one delivery for ``task_uuid``: ``{"data": [...]}``, ``{"errors": [...]}``
        or a bare result object (runware-api.md §4). Returns ``(status, body bytes)``."""
        catalogue = self.extensions["catalogue"]
        started, body = time.perf_counter(), None
        sender = {"remote_addr": environ.get("REMOTE_ADDR"),
                  "content_type": environ.get("CONTENT_TYPE", "")[:200] or None}
        try:
            self.check_token(environ, task_uuid)
            body = self.read_body(environ)
            delivery = parse_body(body)
            outcome = ingest_delivery(catalogue, task_uuid, delivery, source="webhook",
                                      body=body, columns_for=self.columns_for, **sender)
        except Refusal as refusal:
            return self.refuse(task_uuid, refusal, body, sender)
        except ForeignResult as exc:
            return self.refuse(task_uuid, Refusal(409, str(exc)), body, sender)
        except UnknownTask:
            return self.refuse(task_uuid, Refusal(404, "unknown task"), body, sender)
        except (sqlite3.Error, OSError) as exc:  # not stored, or not known to be on disk
            return self.unavailable(exc)
        INGEST_SECONDS.observe(time.perf_counter() - started)
        if outcome.new:  # new results change the spend; budgets are evaluated off this path
            costs_changed(self.flask_app)
        answer = {"taskUUID": task_uuid, "verdict": outcome.verdict, "new": len(outcome.new),
                  "duplicates": len(outcome.duplicates), "failed": outcome.errors,
                  "progress": outcome.progress, "status": outcome.status}
        if delivery.unreadable:
            answer["unreadable"] = delivery.unreadable
        return 200, _json(answer)

    @property
    def columns_for(self):
        """The image store's hook for inline results (made on first use)."""
        if self._columns_for is None:
            self._columns_for = inline_columns(self.flask_app)
        return self._columns_for

    def check_token(self, environ, task_uuid):
        """The token in the query string must be this task's (constant-time compare)."""
        token = next((value for name, value in parse_qsl(
            environ.get("QUERY_STRING", ""), keep_blank_values=True) if name == "token"), None)
        try:
            verify_token(token, task_uuid, secret=self.extensions["webhook_secret"])
        except TokenError as exc:
            raise Refusal(exc.status, str(exc)) from None

    def read_body(self, environ):
        """The body as bytes, refused past the cap, with or without Content-Length.

        A chunked body is read up to one byte past the cap: getting that byte means the
        body is too big (the stream is limited there, so nothing more is buffered).
        """
        cap = self.config["RUNWARE_ARCHIVE_MAX_DELIVERY_BYTES"]
        chunks, size = [], 0
        try:
            stream = get_input_stream(environ, max_content_length=cap + 1)
            while size <= cap:
                chunk = stream.read(min(cap + 1 - size, 1 << 20) or 1)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except RequestEntityTooLarge:
            raise Refusal(413, "body over the size limit") from None
        except (ClientDisconnected, OSError):  # the sender went away mid-body
            raise Refusal(400, "the body was cut short") from None
        if size > cap:
            raise Refusal(413, "body over the size limit")
        return b"".join(chunks)

    def refuse(self, task_uuid, refusal, body, sender):
        """Log a refused delivery and answer with Runware-style ``errors``."""
        try:
            self.extensions["catalogue"].log_rejection(
                source="webhook", reason=refusal.reason, status_code=refusal.status,
                task_uuid=task_uuid[:64], raw_body=body, **sender,
            )
        except sqlite3.Error:
            self.logger.warning("could not log a refused delivery (database busy)")
        errors = refusal.errors or [{"code": "refused", "message": refusal.reason}]
        return refusal.status, _errors(errors)

    def unavailable(self, exc):
        """503 (with Retry-After): the catalogue could not take the write, so nothing
        was stored and the provider must try again."""
        self.logger.warning("webhook not stored, database unavailable: %s", exc)
        return 503, _errors([{"code": "unavailable",
                              "message": "the catalogue is busy; retry shortly"}])


# A JSON escape of a UTF-16 surrogate: a lone one decodes to a str that cannot be stored.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_body(body):
    """Decode JSON (whatever the Content-Type said) and load it with the delivery schema."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise Refusal(400, f"malformed JSON: {exc}") from None
    except RecursionError:
        raise Refusal(400, "malformed JSON: nested too deeply") from None
    if _SURROGATE_ESCAPE.search(body) and not _encodable(payload):
        raise Refusal(400, "malformed JSON: a string holds a lone UTF-16 surrogate")
    try:
        return parse_delivery(payload)
    except ValidationError as exc:
        errors = validation_errors(exc)
        summary = "; ".join(f"{e['parameter']}: {e['message']}" for e in errors[:5])
        raise Refusal(400, f"invalid payload: {summary}", errors) from None


def _encodable(payload):
    """Whether every string in ``payload`` can be written as UTF-8 (no lone surrogate)."""
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json(value):
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def _errors(errors):
    return _json({"errors": errors})


def _respond(start_response, status, body, extra=(), json_body=True):
    headers = [("Content-Length", str(len(body)))]
    if json_body:
        headers.append(("Content-Type", "application/json"))
    headers.extend(extra)
    headers.extend(SECURITY_HEADERS.items())
    start_response(f"{status} {HTTP_STATUS_CODES[status]}", headers)
    return [body]
