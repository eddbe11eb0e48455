"""The runware-archive web service: ``create_app`` builds it, for ``serve`` and for gunicorn."""

import os

from flask import Flask, current_app

from archive.catalogue import Catalogue
from receiver import config as settings
from receiver.tokens import load_or_create_secret

def create_app(test_config=None):
    """Build the app: defaults, ``<data>/config.py``, the environment, then ``test_config``.

    :param test_config: a mapping applied last (tests pass their temporary data folder).
    """
    folder = settings.data_dir(test_config)
    os.makedirs(folder, exist_ok=True)
    app = Flask(
        __name__,
        instance_path=folder,
        instance_relative_config=True,
    )
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
    catalogue = Catalogue(
        os.path.join(folder, "catalogue.db"),
        synchronous=app.config["RUNWARE_ARCHIVE_SYNCHRONOUS"],
        busy_timeout_ms=app.config["RUNWARE_ARCHIVE_BUSY_TIMEOUT_MS"],
    )
    catalogue.migrate()
    app.extensions["catalogue"] = catalogue
    app.teardown_appcontext(lambda exc: catalogue.release())

    from receiver import api, costs, delivery_schemas, hosts, ops, webhooks

    delivery_schemas.warm_up()

    # The webhook is answered in front of Flask (receiver/webhooks.py says why); the rule
    # is kept, build-only, so the route is listed with the others.
    app.wsgi_app = webhooks.WebhookRoute(app, app.wsgi_app)
    # Outermost, so the webhook too is answered only under the service's own names (DNS
    # rebinding), and ProxyFix, when configured, outside that (receiver/hosts.py).
    app.wsgi_app = hosts.wrap(app, app.wsgi_app)
    app.add_url_rule(webhooks.PREFIX + "<task_uuid>", endpoint="webhooks.receive",
                     methods=["POST"], build_only=True)
    app.register_blueprint(api.bp)
    app.register_blueprint(ops.bp)
    from receiver import files  # the image archive: originals, thumbnails, uploads
    app.register_blueprint(files.bp)
    app.register_blueprint(costs.bp)
    from receiver import auth, compose, deliveries, gallery, pages, rerun, tasks  # issue 5

    app.register_blueprint(auth.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(gallery.bp)
    app.register_blueprint(tasks.bp)
    app.register_blueprint(compose.bp)
    app.register_blueprint(rerun.bp)
    app.register_blueprint(deliveries.bp)
    if app.config["PROVIDER"] == "sandbox":
        from receiver import sandbox

        sandbox.init_app(app)
    return app


def get_catalogue():
    """The app's :class:`archive.catalogue.Catalogue`."""
    return current_app.extensions["catalogue"]


def get_secret():
    """The app's webhook secret (bytes)."""
    return current_app.extensions["webhook_secret"]
