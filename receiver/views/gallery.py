"""The gallery ``/``: thumbnails newest first, search, filters, keyset pages; the saved
searches listed in its toolbar are kept and deleted by :mod:`receiver.views.saved`."""

from flask import Blueprint, render_template, request

from archive import browse, saved, search
from receiver import get_catalogue

bp = Blueprint("gallery", __name__)


@bp.get("/")
def index():
    """One page of the gallery for the filters in the query string."""
    filters = browse.Filters.from_args(request.args)
    conn = get_catalogue().conn
    page = browse.gallery(conn, filters, cursor=request.args.get("cursor"))
    return render_template(
        "gallery/index.html", page=page, filters=filters,
        totals=browse.summary(conn, filters), first_page=not request.args.get("cursor"),
        models=browse.models(conn), sizes=browse.sizes(conn), labels=browse.labels(conn),
        saved=saved.list_saved(conn), current_query=saved.query_of(filters.args()),
        reading=search.describe(search.parse(filters.q)),
        statuses=browse.STATUSES, providers=browse.PROVIDERS,
    )
