"""What every HTML page shares: template globals and filters, error pages, the image store,
and the one route a browser asks for on every first load, ``/favicon.ico``.

Registered like a blueprint so ``create_app`` stays one line per concern.
"""

import json
from datetime import datetime

from flask import (
    Blueprint, current_app, jsonify, make_response, render_template, request, send_from_directory,
)
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from archive.sqlite import CatalogueBusy
from receiver.storage import get_store
from receiver.views.auth import logged_in, password
from receiver.views.params import label

bp = Blueprint("pages", __name__)
MACHINE_ROUTES = ("/api/", "/webhooks/", "/uploads/", "/sandbox/", "/metrics", "/healthz")


def image_store():
    """The app's :class:`archive.images.ImageStore`."""
    return get_store(current_app)


@bp.get("/favicon.ico")
def favicon():
    """The icon at the address browsers try before reading any page (base.html names the
    SVG too); open without login, like ``/static/``, so it is never a redirect or a 404."""
    return send_from_directory(current_app.static_folder, "favicon.ico",
                               mimetype="image/vnd.microsoft.icon", max_age=86400)


@bp.app_context_processor
def page_globals():
    """The provider (for the SANDBOX badge) and the login state, on every page."""
    provider = current_app.config.get("PROVIDER")
    return {"provider": provider, "sandbox": provider == "sandbox",
            "ui_password": password() is not None, "logged_in": logged_in()}


@bp.app_template_filter("money")
def money(value, places=4):
    """``$0.0006``; an em dash for no cost."""
    return "—" if value is None else f"${value:,.{places}f}"


@bp.app_template_filter("when")
def when(stamp, seconds=True):
    """``2026-11-24 13:47:18`` (UTC) from the catalogue's ISO text."""
    if not stamp:
        return ""
    try:
        moment = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return stamp
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


@bp.app_template_filter("param_label")
def param_label(name):
    """A parameter's human label (``CFGScale``: "Guidance (CFG scale)"), for the diff
    tables of the form and the task page."""
    return label(name)


@bp.app_template_filter("short")
def short(uuid):
    """The first block of a UUID, for labels (the full one stays in links and titles)."""
    return (uuid or "").split("-")[0]


@bp.app_template_filter("pretty_json")
def pretty_json(value):
    """JSON text re-indented for reading; anything else as it is."""
    try:
        return json.dumps(json.loads(value), indent=2, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError):
        return value


@bp.app_errorhandler(CatalogueBusy)
def catalogue_busy(exc):
    """503 with Retry-After when another process held the catalogue's write lock past the
    wait: JSON on the machine routes, the error page elsewhere; nothing was written."""
    current_app.logger.warning("write refused, catalogue busy: %s", exc)
    error = ServiceUnavailable("The archive is busy writing; try again in a moment.")
    if request.path.startswith(MACHINE_ROUTES):
        response = jsonify(errors=[{"code": "unavailable", "parameter": "catalogue",
                                    "message": error.description}])
        response.status_code = 503
    else:
        response = make_response(render_template("error.html", error=error), 503)
    response.headers["Retry-After"] = "1"
    return response


@bp.app_errorhandler(HTTPException)
def error_page(exc):
    """An HTML page for the browser's errors; machine routes keep their own answers."""
    if exc.code is None or exc.code < 400:
        return exc
    if request.path.startswith("/api/"):  # JSON, even for a route that does not exist
        response = jsonify(errors=[{"parameter": "request", "message": exc.description}])
        response.status_code = exc.code
        response.headers.extend(exc.get_headers()[1:])  # Allow, for a 405
        return response
    if request.path.startswith(MACHINE_ROUTES):
        return exc
    return render_template("error.html", error=exc), exc.code
