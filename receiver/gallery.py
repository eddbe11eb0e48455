"""The gallery ``/``: thumbnails newest first, search, filters, keyset pages."""

from flask import Blueprint, render_template, request

from archive import history
from receiver import get_catalogue

bp = Blueprint("gallery", __name__)


@bp.get("/")
def index():
    """One page of the gallery for the filters in the query string."""
    filters = history.Filters.from_args(request.args)
    conn = get_catalogue().conn
    page = history.gallery(conn, filters, cursor=request.args.get("cursor"))
    return render_template(
        "gallery/index.html", page=page, filters=filters,
        totals=history.summary(conn, filters), first_page=not request.args.get("cursor"),
        models=history.models(conn), sizes=history.sizes(conn),
        statuses=history.STATUSES, providers=history.PROVIDERS,
    )
