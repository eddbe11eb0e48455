"""Saved searches: ``POST /searches`` keeps the gallery's current query and filters under a
name, ``POST /searches/<id>/delete`` forgets one; both carry the session's CSRF token (the
app checks it on every POST) and answer with a redirect, so a reload sends nothing again."""

from flask import Blueprint, abort, flash, redirect, request, url_for

from archive import browse, ordering, saved
from archive.parsing import INT64_MAX
from receiver import get_catalogue

bp = Blueprint("saved", __name__)


def gallery_args(form):
    """The gallery's filters and sort order (when not the default) the form carries."""
    args = browse.Filters.from_args(form).args()
    if form.get("sort") in ordering.ORDERS and form["sort"] != ordering.DEFAULT.name:
        args["sort"] = form["sort"]
    return args


@bp.post("/searches")
def create():
    """Save the filters and sort order the form carries (the gallery's own fields) under
    ``name``."""
    args = gallery_args(request.form)
    try:
        saved.save(get_catalogue(), request.form.get("name", ""), args)
    except ValueError as exc:
        flash(f"Not saved: {exc}.")
    else:
        flash(f"Saved the search “{' '.join(request.form.get('name', '').split())}”.")
    return redirect(url_for("gallery.index", **args), 303)


@bp.post("/searches/<int:saved_id>/delete")
def delete(saved_id):
    """Forget one saved search (its images are untouched)."""
    name = saved.delete(get_catalogue(), saved_id) if saved_id <= INT64_MAX else None
    if name is None:
        abort(404, description=f"There is no saved search {saved_id}.")
    flash(f"Deleted the saved search “{name}”.")
    back = gallery_args(request.form)  # the gallery it was deleted from
    return redirect(url_for("gallery.index", **back), 303)
