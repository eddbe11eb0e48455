"""The runware-archive web service: ``create_app`` builds it, for ``serve`` and for gunicorn."""

import os

from flask import Flask, current_app

from archive import budget_store
from archive.catalogue import Catalogue
from receiver import concurrency
from receiver import config as settings
from receiver.provider.tokens import load_or_create_secret


def create_app(test_config=None):
    """Build the app: defaults, ``<data>/config.py``, the environment, then ``test_config``.

    :param test_config: a mapping applied last (tests pass their temporary data folder).
    """
    folder = settings.data_dir(test_config)
    os.makedirs(folder, exist_ok=True)
    app = Flask(__name__, instance_path=folder, instance_relative_config=True)
    configure(app, folder, test_config)
    open_catalogue(app, folder)
    install_routes(app)
    if app.config["PROVIDER"] == "sandbox":
        mount_sandbox(app)
    return app


def configure(app, folder, test_config):
    """The settings, in order of precedence, and the secret the sessions sign with."""
    app.config.from_mapping(settings.DEFAULTS)
    app.config.from_pyfile("config.py", silent=True)
    settings.from_environment(app.config)
    if test_config:
        app.config.from_mapping(test_config)
    app.config["RUNWARE_ARCHIVE_DIR"] = folder
    app.config["PROVIDER"] = settings.provider_name(app.config)
    secret = load_or_create_secret(os.path.join(folder, "webhook-secret"))
    app.extensions["webhook_secret"] = secret
    app.config.setdefault("SECRET_KEY", secret.hex())


def open_catalogue(app, folder):
    """The catalogue, migrated, its connection given back after every request."""
    catalogue = Catalogue(
        os.path.join(folder, "catalogue.db"),
        synchronous=app.config["RUNWARE_ARCHIVE_SYNCHRONOUS"],
        busy_timeout_ms=app.config["RUNWARE_ARCHIVE_BUSY_TIMEOUT_MS"],
        off_loop=concurrency.off_loop,
    )
    catalogue.migrate()
    # The RUNWARE_ARCHIVE_BUDGET_* variables, where new, become the catalogue's budgets,
    # which bind every process (archive/budget_store.py says which change wins).
    budget_store.apply_environment(catalogue, app.config)
    app.extensions["catalogue"] = catalogue
    app.teardown_appcontext(lambda exc: catalogue.release())


def install_routes(app):
    """The provider-facing routes (:mod:`receiver.provider`), the JSON API, the HTML views
    (:mod:`receiver.views`), and the layers in front."""
    from protocol import deliveries
    from receiver import api, files, hosts, ops
    from receiver.provider import runware_api, webhooks
    from receiver.views import (auth, books as books_views, budget_form, compose, dashboard,
                                deliveries as delivery_views, gallery, images,
                                keys as key_views, pages, read as read_views,
                                saved as saved_views, tasks)

    deliveries.warm_up()
    # The webhook is answered in front of Flask (receiver/provider/webhooks.py says why); the rule
    # is kept, build-only, so the route is listed with the others.
    app.wsgi_app = webhooks.WebhookRoute(app, app.wsgi_app)
    # Outermost, so the webhook too is answered only under the service's own names (DNS
    # rebinding), and ProxyFix, when configured, outside that (receiver/hosts.py).
    app.wsgi_app = hosts.wrap(app, app.wsgi_app)
    app.add_url_rule(webhooks.PREFIX + "<task_uuid>", endpoint="webhooks.receive",
                     methods=["POST"], build_only=True)
    # read_views before auth: its body cap must be set before the CSRF check reads the form.
    for module in (api, ops, files, dashboard, read_views, auth, pages, gallery, tasks, images,
                   compose, delivery_views, key_views, saved_views, books_views, budget_form,
                   runware_api):
        app.register_blueprint(module.bp)


def mount_sandbox(app):
    """The sandbox provider at ``SANDBOX_PATH``, told where this service's own webhook and
    upload routes are (the only callbacks it makes, besides configured ones), and its key
    kept for this service's own client."""
    from receiver import storage
    from sandbox import app as sandbox_app
    from sandbox.guard import sandbox_key

    routes = {"webhookURL": settings.WEBHOOK_ROUTE, "uploadEndpoint": settings.UPLOAD_ROUTE}

    def own_callbacks(field, task_uuid):
        bases = {settings.public_url(app.config), settings.local_url(app.config)}
        own = [base.rstrip("/") + routes[field].format(task_uuid=task_uuid)
               for base in bases if base]
        bucket = storage.upload_endpoint(app, task_uuid) if field == "uploadEndpoint" else None
        return own + [bucket[1]] if bucket else own  # the store's own key for this task

    sandbox_app.init_app(app, url_prefix=settings.SANDBOX_PATH, own_callbacks=own_callbacks)
    app.extensions["sandbox_key"] = sandbox_key(app.config)


def get_catalogue():
    """The app's :class:`archive.catalogue.Catalogue`."""
    return current_app.extensions["catalogue"]


def get_secret():
    """The app's webhook secret (bytes)."""
    return current_app.extensions["webhook_secret"]
