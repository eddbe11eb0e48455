"""The image archive as the app configures it: its store and its download rules.

``archive/`` knows nothing of settings; this module turns ``app.config`` into an
:class:`~archive.images.ImageStore` and a download :class:`~archive.safe_fetch.Policy`. It
is the one place that looks at ``RUNWARE_ARCHIVE_STORAGE``: every caller gets an
``ImageStore`` and never asks which kind. The worker that uses them, with its
housekeeping, is :mod:`receiver.worker`.
"""

import logging
from urllib.parse import urlsplit

from archive.safe_fetch import Policy
from archive.filestore import FileStore
from archive.images import inline_image_columns
from receiver import config as settings

log = logging.getLogger(__name__)
FLAG_ON = ("1", "on", "true", "yes")


def flag(value):
    """A setting that reads as on: ``on``/``true``/``yes``/``1`` (any case) or True."""
    return value is True or str(value).strip().lower() in FLAG_ON


def get_store(app):
    """The app's :class:`~archive.images.ImageStore` (made on first use)."""
    store = app.extensions.get("image_store")
    if store is None:
        store = make_store(app.config)
        app.extensions["image_store"] = store
    return store


def make_store(config):
    """The store ``RUNWARE_ARCHIVE_STORAGE`` names: ``file`` (the data folder) or
    ``s3://bucket/prefix`` (with ``RUNWARE_ARCHIVE_S3_ENDPOINT`` for a store not AWS)."""
    location = (config.get("RUNWARE_ARCHIVE_STORAGE") or "file").strip()
    folder, cap = config["RUNWARE_ARCHIVE_DIR"], config["RUNWARE_ARCHIVE_MAX_IMAGE_BYTES"]
    if location == "file":
        return FileStore(folder, max_bytes=cap)
    from archive.locations import parse_location
    from archive.s3store import S3Store  # boto3 only when a bucket is used

    try:
        bucket, prefix = parse_location(location)
    except ValueError as exc:
        raise SystemExit(f"RUNWARE_ARCHIVE_STORAGE: {exc} (or 'file')") from None
    return S3Store(folder, bucket, prefix, endpoint=config.get("RUNWARE_ARCHIVE_S3_ENDPOINT"),
                   max_bytes=cap)


def streams_files(config):
    """Whether ``/files/`` and ``/thumbs/`` stream a bucket's bytes through the service
    (``RUNWARE_ARCHIVE_S3_SERVE=stream``) rather than redirect to a presigned GET."""
    return (config.get("RUNWARE_ARCHIVE_S3_SERVE") or "redirect").strip().lower() == "stream"


def image_origin(app):
    """The origin of the presigned GETs ``/files/`` redirects to (``scheme://host:port``),
    which the pages' CSP must allow images from; None when the service serves the bytes."""
    if "image_origin" not in app.extensions:
        try:
            url = None if streams_files(app.config) else get_store(app).presigned_url(
                "images/origin", expires=60)
        except Exception as exc:  # noqa: BLE001 - no credentials: pages still render
            log.warning("no presigned URL from the image store (%s): /files/ will fail", exc)
            url = None
        parts = urlsplit(url) if url else None
        app.extensions["image_origin"] = f"{parts.scheme}://{parts.netloc}" if parts else None
    return app.extensions["image_origin"]


def inline_columns(app):
    """The ``columns_for=`` hook that archives inline (base64/dataURI) results at ingest."""
    return inline_image_columns(get_store(app))


def uploads_enabled(config):
    """Whether tasks are sent with an ``uploadEndpoint`` of ours."""
    return flag(config.get("RUNWARE_ARCHIVE_UPLOADS"))


def uploads_for(app):
    """``submit``'s ``uploads=``: False when uploads are off; else a function naming the
    task's ``uploadEndpoint`` when the store takes PUTs straight (a presigned PUT of the
    bucket), None to use this service's own ``/uploads/`` route."""
    if not uploads_enabled(app.config):
        return False

    def endpoint(task_uuid):
        found = upload_endpoint(app, task_uuid)
        return found[0] if found else None

    return endpoint


def upload_endpoint(app, task_uuid):
    """``(url, url without its signature)`` of the store's PUT for ``task_uuid``, or None."""
    return get_store(app).upload_endpoint(
        task_uuid, expires=app.config["RUNWARE_ARCHIVE_S3_UPLOAD_EXPIRY"])


def trusted_hosts(config):
    """Without a key the provider is the sandbox, this service or the one the admin
    configured: its ``host:port`` may be plain http on a loopback address."""
    if settings.provider_name(config) != "sandbox":
        return []
    urls = (settings.local_url(config), settings.provider_url(config))
    return sorted({urlsplit(url).netloc.lower() for url in urls})


def fetch_policy(config):
    """The download :class:`Policy`: ``RUNWARE_ARCHIVE_IMAGE_HOSTS`` (``host[:port]``, or
    ``http://host[:port]`` to allow plain http) plus the sandbox when there is no key."""
    try:
        return Policy(
            settings.image_hosts(config), trusted=trusted_hosts(config),
            max_bytes=config["RUNWARE_ARCHIVE_MAX_IMAGE_BYTES"],
            total_timeout=config["RUNWARE_ARCHIVE_FETCH_TIMEOUT"],
        )
    except ValueError as exc:
        raise SystemExit(f"RUNWARE_ARCHIVE_IMAGE_HOSTS: {exc}") from None
