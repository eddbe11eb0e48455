"""The ``/costs`` page's section on Runware's own books: the last pass's days (the archive's
total and estimate, Runware's total, the difference and what explains it), the balance and
its runway, and ``POST /costs/books`` to run a pass now. The page only reads what the last
pass stored (:mod:`archive.books`); asking Runware happens in the pass alone
(:mod:`receiver.provider.books`: the worker's daily one, the command, or this button)."""

from flask import Blueprint, current_app, redirect, url_for

from archive import books
from receiver import get_catalogue
from receiver.provider import books as books_pass

bp = Blueprint("books", __name__)
SHOWN_DAYS = 14


def section():
    """What ``costs/_books.html`` shows: the stored days (newest first), the account row,
    the threshold in force."""
    conn = get_catalogue().conn
    return {"days": books.stored_days(conn, limit=SHOWN_DAYS),
            "account": books.stored_account(conn),
            "threshold": current_app.config.get("RUNWARE_ARCHIVE_BOOKS_THRESHOLD"),
            "floor": current_app.config.get("RUNWARE_ARCHIVE_BALANCE_ALERT")}


@bp.app_context_processor
def helpers():
    """``books_section()`` for the costs page (called only where it is included)."""
    return {"books_section": section}


@bp.post("/costs/books")
def check_now():
    """Run a books pass now (the form carries the CSRF token), then show the page."""
    books_pass.run(current_app._get_current_object())
    return redirect(url_for("costs.index", _anchor="books"), code=303)
