"""The budget form on ``/costs``: ``POST /costs/budget`` sets or clears the daily and
monthly budgets, which live in the catalogue (:mod:`archive.budget_store`) so the server,
the worker and ``runware-archive submit`` from any shell obey the same ones. The app checks
the session's CSRF token on every POST; the answer is a redirect back to ``/costs``."""

from flask import Blueprint, flash, redirect, request

from archive import budget_store
from receiver import get_catalogue

bp = Blueprint("budget_form", __name__)
SOURCE_NAMES = {"env": "from the environment", "cli": "by the CLI", "ui": "on this page"}


@bp.post("/costs/budget")
def update():
    """``daily`` and ``monthly`` in USD; an empty field clears that budget."""
    catalogue = get_catalogue()
    try:
        values = {period: budget_store.check_limit(
            (request.form.get(period) or "").strip().lstrip("$") or None)
            for period in budget_store.PERIODS}
    except ValueError as exc:
        flash(f"Budgets not changed: {exc}.")
        return redirect("/costs#budgets", 303)
    # Only what differs is written, so "set on this page" never marks an untouched field.
    now = dict(zip(budget_store.PERIODS, budget_store.limits(catalogue.conn)))
    changed = {p: v for p, v in values.items() if v != now[p]}
    if changed:
        budget_store.set_limits(catalogue, "ui", **changed)
    shown = ", ".join(f"{p} {'none' if v is None else f'${v:.4f}'}" for p, v in values.items())
    flash(f"Budgets set: {shown}. Every process (server, worker, CLI) obeys them from now on."
          if changed else f"Budgets unchanged: {shown}.")
    return redirect("/costs#budgets", 303)


@bp.app_context_processor
def budget_helpers():
    """``budget_settings()`` for the form: each period's stored limit, source and time."""
    def budget_settings():
        rows = budget_store.stored(get_catalogue().conn)
        return {period: dict(rows.get(period) or {"limit": None, "source": None, "set_at": None},
                             source_name=SOURCE_NAMES.get((rows.get(period) or {}).get("source")))
                for period in budget_store.PERIODS}
    return {"budget_settings": budget_settings}
