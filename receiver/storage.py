"""The image archive as the app configures it: its store and its download rules.

``archive/`` knows nothing of settings; this module turns ``app.config`` into an
:class:`~archive.images.ImageStore` and a download :class:`~archive.safe_fetch.Policy`. The
worker that uses them, with its housekeeping, is :mod:`receiver.worker`.
"""

from urllib.parse import urlsplit

from archive.safe_fetch import Policy
from archive.images import ImageStore, inline_image_columns
from receiver import config as settings

FLAG_ON = ("1", "on", "true", "yes")


def flag(value):
    """A setting that reads as on: ``on``/``true``/``yes``/``1`` (any case) or True."""
    return value is True or str(value).strip().lower() in FLAG_ON


def get_store(app):
    """The app's :class:`ImageStore` in the data folder (made on first use)."""
    store = app.extensions.get("image_store")
    if store is None:
        store = ImageStore(app.config["RUNWARE_ARCHIVE_DIR"],
                           max_bytes=app.config["RUNWARE_ARCHIVE_MAX_IMAGE_BYTES"])
        app.extensions["image_store"] = store
    return store


def inline_columns(app):
    """The ``columns_for=`` hook that archives inline (base64/dataURI) results at ingest."""
    return inline_image_columns(get_store(app))


def uploads_enabled(config):
    """Whether tasks are sent with an ``uploadEndpoint`` of ours."""
    return flag(config.get("RUNWARE_ARCHIVE_UPLOADS"))


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
