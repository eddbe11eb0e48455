"""The worker: the image fetcher and its housekeeping, assembled from the app's settings.

It runs as a thread of ``runware-archive serve`` (``RUNWARE_ARCHIVE_FETCHER=thread``) or
alone as ``runware-archive worker``; never inside ``create_app``, so tests and gunicorn
workers do not each start one. Its housekeeping, beside fetching: the delivery log's
retention every hour, the reconcile pass, the books (Runware's records against ours) every
``RUNWARE_ARCHIVE_BOOKS_INTERVAL`` (a day), the budgets every minute, and every second the
relay of results to ``/v1`` clients' own webhooks.
"""

import logging

from archive import budgets, relay
from archive.fetcher import Fetcher
from receiver.storage import fetch_policy, get_store
from receiver.provider import books as books_pass
from receiver.provider.reconcile import reconcile_and_log
from receiver.provider.runware_api import relay_body

log = logging.getLogger(__name__)
BUDGET_INTERVAL = 60.0  # seconds: how late a crossing no delivery revealed is alerted
RELAY_INTERVAL = 1.0  # seconds: how late a stored result may reach a client's webhook


def make_fetcher(app, *, reconcile=True):
    """A :class:`Fetcher` for the app, which also applies the delivery log's retention
    every hour, evaluates the budgets every minute and, with ``reconcile``, runs the
    reconcile pass every ``RUNWARE_ARCHIVE_RECONCILE_INTERVAL`` seconds and then, every
    ``RUNWARE_ARCHIVE_BOOKS_INTERVAL``, the books."""
    cfg = app.config
    catalogue = app.extensions["catalogue"]
    housekeeping = [(3600.0, lambda: prune_log(catalogue, cfg))]
    if reconcile:
        housekeeping.append((cfg["RUNWARE_ARCHIVE_RECONCILE_INTERVAL"],
                             lambda: reconcile_and_log(app)))
        # after the reconcile pass, so what getTaskDetails recovered is counted
        housekeeping.append((cfg["RUNWARE_ARCHIVE_BOOKS_INTERVAL"],
                             lambda: books_pass.run_and_log(app)))
    # after the reconcile pass, so what it brought is evaluated in the same round
    housekeeping.append((BUDGET_INTERVAL, lambda: check_budgets(app)))
    housekeeping.append((RELAY_INTERVAL, lambda: relay_results(app)))
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
    plan = budgets.current(app.extensions["catalogue"].conn, app.config)
    return budgets.evaluate(app.extensions["catalogue"], plan) if plan.active else []


def relay_results(app):
    """One relay pass (:func:`archive.relay.relay_pass`): queue the results stored since
    the last, send what is due (uploads from the image store); ``{state: count}`` of the
    attempts made."""
    cfg = app.config
    return relay.relay_pass(app.extensions["catalogue"], relay_body,
                            max_attempts=cfg["RUNWARE_ARCHIVE_RELAY_ATTEMPTS"],
                            backoff=cfg["RUNWARE_ARCHIVE_RELAY_BACKOFF"],
                            store=get_store(app))


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
