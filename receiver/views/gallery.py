"""The gallery ``/``: thumbnails in their own proportions, search, filters, sort orders,
keyset pages both ways, and how dense the rows are; the saved searches listed in its
toolbar are kept and deleted by :mod:`receiver.views.saved`."""

import math

from flask import Blueprint, abort, make_response, render_template, request

from archive import browse, ordering, saved, search
from receiver import get_catalogue

bp = Blueprint("gallery", __name__)
DENSITIES = ("small", "medium", "large")
DENSITY_COOKIE = "gallery_density"
YEAR = 365 * 24 * 3600
ASPECT_STEPS = 24  # aspect classes per doubling of width / height (static/gallery.css)
ASPECT_SPAN = 48  # from 1:4 to 4:1


@bp.app_template_filter("aspect_class")
def aspect_class(width, height):
    """The CSS class (``ar-5``, ``ar-m12``) whose ratio is nearest ``width / height``: CSP
    allows no ``style=``, so each card takes one of 97 classes, 3 % apart at most."""
    if not width or not height:
        return "ar-0"
    step = round(math.log2(width / height) * ASPECT_STEPS)
    step = max(-ASPECT_SPAN, min(ASPECT_SPAN, step))
    return f"ar-{step}" if step >= 0 else f"ar-m{-step}"


def density():
    """``(density, remember)``: the query's ``density`` (to be remembered in a cookie),
    else the cookie's, else medium."""
    asked = request.args.get("density", "")
    if asked in DENSITIES:
        return asked, True
    kept = request.cookies.get(DENSITY_COOKIE, "")
    return (kept if kept in DENSITIES else "medium"), False


@bp.get("/")
def index():
    """One page of the gallery for the filters, order and position in the query string."""
    filters = browse.Filters.from_args(request.args)
    order = ordering.ORDERS.get(request.args.get("sort") or ordering.DEFAULT.name)
    if order is None:
        abort(400, description=f"sort: must be one of {', '.join(ordering.ORDERS)}")
    conn = get_catalogue().conn
    try:
        page = browse.gallery(conn, filters, cursor=request.args.get("cursor"),
                              before=request.args.get("before"),
                              last=request.args.get("last") == "1", order=order)
    except ValueError as exc:
        abort(400, description=f"cursor: {exc}; start again from the first page")
    chosen, remember = density()
    link_args = dict(filters.args(), **({} if order is ordering.DEFAULT else
                                         {"sort": order.name}))
    response = make_response(render_template(
        "gallery/index.html", page=page, filters=filters, order=order,
        orders=ordering.ORDERS.values(), density=chosen, densities=DENSITIES,
        link_args=link_args, totals=browse.summary(conn, filters),
        first_page=page.previous is None,
        models=browse.models(conn), sizes=browse.sizes(conn), labels=browse.labels(conn),
        saved=saved.list_saved(conn), current_query=saved.query_of(link_args),
        reading=search.describe(search.parse(filters.q)),
        statuses=browse.STATUSES, providers=browse.PROVIDERS,
    ))
    if remember:
        response.set_cookie(DENSITY_COOKIE, chosen, max_age=YEAR, samesite="Lax",
                            httponly=True)
    return response
