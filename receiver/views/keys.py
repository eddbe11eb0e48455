"""The client keys page ``/keys``: every key ``POST /v1`` accepts (or accepted), with its
budgets, what its tasks cost and how many there are; a form to make one and a button to
revoke one, both carrying the session's CSRF token like every form here.

A new key's secret is in the answer to the form that made it, and nowhere else: not in a
redirect's flash (the session cookie is signed, not encrypted), not cached
(``Cache-Control: no-store``), never stored (only its SHA-256 is, :mod:`archive.keys`).
"""

import math

from flask import Blueprint, abort, flash, make_response, redirect, render_template, request

from archive import keys
from archive.parsing import INT64_MAX
from receiver import get_catalogue

bp = Blueprint("keys", __name__)
MAX_LABEL = 200  # it is shown in every list and breakdown by label


@bp.get("/keys")
def index():
    """Every key, oldest first."""
    return page()


@bp.post("/keys")
def create():
    """Make a key from the form (``label``, ``daily_budget``, ``monthly_budget``) and show
    its secret, once."""
    form = request.form
    try:
        if len(form.get("label", "")) > MAX_LABEL:
            raise ValueError(f"a label is at most {MAX_LABEL} characters")
        daily, monthly = (budget(form, name) for name in ("daily_budget", "monthly_budget"))
        row, secret = keys.create(get_catalogue(), form.get("label", ""), daily=daily,
                                  monthly=monthly)
    except ValueError as exc:
        return page(error=str(exc), form=form, status=400)
    return page(created=row, secret=secret)


@bp.post("/keys/<int:key_id>/revoke")
def revoke(key_id):
    """Revoke a live key; ``POST /v1`` refuses it from then on."""
    if key_id > INT64_MAX or not keys.revoke(get_catalogue(), key_id):
        abort(404, description=f"There is no live key {key_id}.")
    flash(f"Key {key_id} is revoked: POST /v1 refuses it from now on.")
    return redirect("/keys", 303)


def budget(form, name):
    """A budget field in USD: empty is none; else a finite number, not negative."""
    raw = (form.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"the {name.split('_')[0]} budget must be a number of USD, 0 or more")
    return value


def page(*, status=200, **context):
    """The page, never cached: it may hold a key that is shown once."""
    response = make_response(render_template(
        "keys/index.html", keys=keys.list_keys(get_catalogue().conn), **context), status)
    response.headers["Cache-Control"] = "no-store"
    return response
