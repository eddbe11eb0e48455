"""The archived images over HTTP: originals, thumbnails, downloads with the parameters
inside, sidecar JSON, and the ``uploadEndpoint`` the provider PUTs images to.

Originals are served by content address with the sha256 as ETag, the content type from our
own record (never the provider's), ``nosniff`` and a year of caching: the bytes behind a
sha256 never change. From a bucket they are, by default, a redirect to a presigned GET of a
few minutes (``RUNWARE_ARCHIVE_S3_SERVE=stream`` sends the bytes through instead): the
redirect carries the same ETag (and a matching ``If-None-Match`` is answered 304 here, with
no trip to the bucket) but is cached for only half the URL's life, while the object itself
answers with its content type and the year of ``immutable`` caching.
``PUT /uploads/<taskUUID>?token=…`` takes raw image bytes (token
checked like the webhook's, under the ``upload`` purpose); how an upload finds its result
is in :mod:`archive.uploads`.
"""

import contextlib
import os
import re
import sqlite3

from flask import (Blueprint, Response, abort, current_app, jsonify, redirect, request,
                   send_file)
from werkzeug.exceptions import RequestEntityTooLarge

from archive import metadata
from archive.catalogue import UnknownTask
from archive.images import CONTENT_TYPES, BadImage, recorded_extension
from archive.uploads import record_upload
from receiver import get_catalogue, get_secret
from receiver.storage import get_store, streams_files
from receiver.provider.tokens import TokenError, verify_token
from archive import states

bp = Blueprint("files", __name__)
SHA256 = re.compile(r"^[0-9a-f]{64}$")
UUID = re.compile(r"^[0-9a-fA-F-]{36}$")
YEAR = 365 * 24 * 3600


def file_links(result):
    """The API's ``file``, ``thumbnail`` and ``download`` paths of an archived result."""
    if result["archive_state"] != states.ARCHIVED or not result["sha256"]:
        return {"file": None, "thumbnail": None, "download": None}
    sha = result["sha256"]
    return {"file": f"/files/{sha}.{result['file_ext']}", "thumbnail": f"/thumbs/{sha}.webp",
            "download": f"/download/{result['image_uuid']}"}


def _recorded_ext(sha256):
    """The extension our catalogue recorded for ``sha256`` (results, then uploads)."""
    return recorded_extension(get_catalogue().conn, sha256)


def _immutable(response):
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = f"public, max-age={YEAR}, immutable"
    return response


@bp.get("/files/<sha256>.<ext>")
def original(sha256, ext):
    """The original bytes of an archived image."""
    if not SHA256.match(sha256) or _recorded_ext(sha256) != ext:
        abort(404)
    store = get_store(current_app)
    if not store.has(sha256, ext):
        abort(404)
    return _serve(store, store.original_name(sha256, ext), sha256, CONTENT_TYPES[ext])


@bp.get("/thumbs/<sha256>.webp")
def thumbnail(sha256):
    """The WEBP thumbnail (~384 px), made the first time it is asked for."""
    ext = _recorded_ext(sha256) if SHA256.match(sha256) else None
    if ext is None:
        abort(404)
    store = get_store(current_app)
    try:
        name = store.thumbnail(sha256, ext)
    except FileNotFoundError:  # the original is not in the store
        abort(404)
    return _serve(store, name, f"{sha256}-thumb", "image/webp")


def _serve(store, name, etag, mimetype):
    """``name`` from the store: 304 to a matching ``If-None-Match``; else a redirect to a
    presigned GET where the store has them (unless set to stream), else the bytes."""
    if etag in request.if_none_match:
        response = _immutable(Response(status=304))
        response.set_etag(etag)
        return response
    expires = current_app.config["RUNWARE_ARCHIVE_S3_URL_EXPIRY"]
    url = None if streams_files(current_app.config) else store.presigned_url(
        name, expires=expires)
    if url is None:
        return _immutable(send_file(store.source(name), mimetype=mimetype, etag=etag,
                                    conditional=True, max_age=YEAR))
    response = redirect(url, 302)
    response.set_etag(etag)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = f"private, max-age={max(0, expires // 2)}"
    return response


def _archived(image_uuid):
    """``(task, result)`` of an archived image, or a 404/409 answer to return."""
    pair = metadata.load(get_catalogue().conn, image_uuid) if UUID.match(image_uuid) else None
    if pair is None:
        return None, (jsonify(errors=[{"code": "notFound", "message": "no such image"}]), 404)
    task, result = pair
    if result["archive_state"] != states.ARCHIVED:
        return None, (jsonify(errors=[{"code": "notArchived", "message": (
            f"the image is {result['archive_state']}: {result['archive_error'] or 'not yet stored'}"
        )}]), 409)
    return pair, None


@bp.get("/download/<image_uuid>")
def download(image_uuid):
    """A copy of the original with the generation parameters embedded, as an attachment."""
    pair, refusal = _archived(image_uuid)
    if refusal:
        return refusal
    task, result = pair
    with get_store(current_app).open(result["sha256"], result["file_ext"]) as f:
        data = metadata.embed(f.read(), result["file_ext"], task, result)
    response = Response(data, mimetype=CONTENT_TYPES[result["file_ext"]])
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{result["image_uuid"]}.{result["file_ext"]}"')
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/download/<image_uuid>.json")
def sidecar(image_uuid):
    """Everything about one archived image as JSON (the sidecar of the download)."""
    pair, refusal = _archived(image_uuid)
    if refusal:
        return refusal
    response = jsonify(metadata.sidecar(*pair))
    response.headers["Content-Disposition"] = f'attachment; filename="{image_uuid}.json"'
    return response


@bp.put("/uploads/<task_uuid>")
def upload(task_uuid):
    """Take the raw bytes of one image of ``task_uuid`` (``uploadEndpoint``)."""
    try:
        verify_token(request.args.get("token"), task_uuid, secret=get_secret(),
                     purpose="upload")
    except TokenError as exc:
        return jsonify(errors=[{"code": "refused", "message": str(exc)}]), exc.status
    store = get_store(current_app)
    tmp = _receive_to_temp(store)
    if tmp is None:
        return jsonify(errors=[{"code": "tooLarge", "message": "over the image size limit"}]), 413
    hint = request.args.get("imageUUID")
    try:
        outcome = record_upload(get_catalogue(), store, task_uuid, tmp,
                                image_uuid=hint if hint and UUID.match(hint) else None,
                                remote_addr=request.remote_addr)
    except BadImage as exc:
        return jsonify(errors=[{"code": "notAnImage", "message": str(exc)}]), 422
    except UnknownTask:
        return jsonify(errors=[{"code": "notFound", "message": "unknown task"}]), 404
    except sqlite3.OperationalError:
        return jsonify(errors=[{"code": "unavailable", "message": "retry shortly"}]), 503
    return jsonify(taskUUID=task_uuid, sha256=outcome.sha256, new=outcome.new,
                   imageUUID=outcome.matched_to), 201 if outcome.new else 200


def _receive_to_temp(store):
    """Stream the body into a temporary file; its path, or None past the byte cap."""
    request.max_content_length = store.max_bytes + 1
    f, tmp = store.temp_file()
    size = 0
    try:
        with f:
            while size <= store.max_bytes:
                chunk = request.stream.read(1 << 20)
                if not chunk:
                    return tmp
                size += len(chunk)
                f.write(chunk)
    except RequestEntityTooLarge:  # a Content-Length over the cap: refused unread
        os.unlink(tmp)
        return None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    os.unlink(tmp)
    return None
