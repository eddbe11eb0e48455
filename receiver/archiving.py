"""The image archive as the app configures it: its store, its download rules, its worker.

``archive/`` knows nothing of settings; this module turns ``app.config`` into an
:class:`~archive.images.ImageStore`, a download :class:`~archive.download.Policy` and a
:class:`~archive.fetcher.Fetcher`. The fetcher runs as a thread of ``runware-archive serve``
(``RUNWARE_ARCHIVE_FETCHER=thread``) or alone as ``runware-archive worker``; never inside
``create_app``, so tests and gunicorn workers do not each start one.
"""

import logging
from urllib.parse import urlsplit

from archive import budgets
from archive.download import Policy
from archive.fetcher import Fetcher
from archive.images import ImageStore, inline_preparer
from receiver import config as settings

log = logging.getLogger(__name__)
FLAG_ON = ("1", "on", "true", "yes")
BUDGET_INTERVAL = 60.0  # seconds: how late a crossing no delivery revealed is alerted


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


def inline_prepare(app):
    """The ``prepare=`` hook that archives inline (base64/dataURI) results at ingest."""
    return inline_preparer(get_store(app))


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


def make_fetcher(app, *, reconcile=True):
    """A :class:`Fetcher` for the app, which also applies the delivery log's retention
    every hour, evaluates the budgets every minute and, with ``reconcile``, runs the
    reconcile pass every ``RUNWARE_ARCHIVE_RECONCILE_INTERVAL`` seconds."""
    cfg = app.config
    catalogue = app.extensions["catalogue"]
    housekeeping = [(3600.0, lambda: prune_log(catalogue, cfg))]
    if reconcile:
        from receiver.reconcile import reconcile_and_log

        housekeeping.append((cfg["RUNWARE_ARCHIVE_RECONCILE_INTERVAL"],
                             lambda: reconcile_and_log(app)))
    # after the reconcile pass, so what it brought is evaluated in the same round
    housekeeping.append((BUDGET_INTERVAL, lambda: check_budgets(app)))
    timeout = cfg["RUNWARE_ARCHIVE_FETCH_TIMEOUT"]
    return Fetcher(
        catalogue, get_store(app), fetch_policy(cfg),
        lease=cfg["RUNWARE_ARCHIVE_FETCH_LEASE"] or 2 * timeout,
        max_attempts=cfg["RUNWARE_ARCHIVE_FETCH_ATTEMPTS"],
        concurrency=cfg["RUNWARE_ARCHIVE_FETCH_CONCURRENCY"],
        housekeeping=housekeeping,
    )


def check_budgets(app):
    """Record and alert the budget crossings no one else did: costs stored by another
    process (the CLI), by a reconcile pass, or a limit lowered in the settings. Pages only
    read the budgets, so without this such a crossing would wait for the next delivery
    or submission. Returns the new crossings."""
    plan = budgets.Budget.from_settings(app.config)
    return budgets.evaluate(app.extensions["catalogue"], plan) if plan.active else []


def prune_log(catalogue, cfg):
    """The delivery log's retention (``RUNWARE_ARCHIVE_DELIVERY_RETENTION_DAYS``), logged
    when it deleted anything."""
    gone = catalogue.prune_deliveries(
        older_than_days=cfg["RUNWARE_ARCHIVE_DELIVERY_RETENTION_DAYS"])
    if gone:
        log.info("delivery log: %d deliveries past the retention deleted", gone)
    return gone


def start_fetcher(app):
    """Start the fetcher thread when ``RUNWARE_ARCHIVE_FETCHER`` is ``thread``; returns
    the Event that stops it, or None when it is ``off``."""
    mode = str(app.config["RUNWARE_ARCHIVE_FETCHER"]).strip().lower()
    if mode == "off":
        return None
    if mode != "thread":
        raise SystemExit(f"RUNWARE_ARCHIVE_FETCHER={mode!r}: use thread or off")
    return make_fetcher(app).start()
