"""The client keys page ``/keys``: every key ``POST /v1`` accepts (or accepted), with its
budgets, what its tasks cost and how many there are. It only reads: making and revoking a
key stay in the CLI (``runware-archive keys create`` / ``revoke``), where a new key's
secret is printed once to the person who made it and never passes through a browser."""

from flask import Blueprint, render_template

from archive import keys
from receiver import get_catalogue

bp = Blueprint("keys", __name__)


@bp.get("/keys")
def index():
    """Every key, oldest first."""
    return render_template("keys/index.html", keys=keys.list_keys(get_catalogue().conn))
