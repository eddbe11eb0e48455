"""The browser's side of security: login, CSRF tokens, and headers on every response.

- ``RUNWARE_ARCHIVE_UI_PASSWORD`` set: every page, ``/files``, ``/thumbs``, ``/download``
  and the JSON API need a login (a session cookie, HttpOnly, SameSite=Lax) or, for the
  JSON API and ``/metrics`` only, ``Authorization: Bearer <password>``. The webhook,
  upload and sandbox routes keep their own per-task tokens and never see a login, nor
  does ``POST /v1`` (Runware's protocol), which checks the client keys of ``archive.keys``.
- Sessions live in the catalogue (:mod:`archive.sessions`); the signed cookie only names
  one. Logging out deletes it, so a copy of the cookie stops working too, and a new
  password ends every session. Wrong passwords (form or Bearer) are counted there as well,
  per client address, so every worker enforces one limit and a restart does not reset it.
  The address is ``request.remote_addr``: behind a reverse proxy that is the proxy's, until
  the app is wrapped in Werkzeug's ``ProxyFix`` for it, which rewrites ``remote_addr``.
- CSRF: Flask-WTF's token, bound to the session, sent back in a hidden ``csrf_token`` field
  (or an ``X-CSRF-Token`` header), is required on every POST, PUT, PATCH and DELETE except
  the token-authenticated routes and JSON requests to ``/api/*`` (a browser cannot send
  ``Content-Type: application/json`` to another site without CORS, which we never allow).
  A missing token answers 400, a wrong one 403.
- Every response carries a Content-Security-Policy with no inline script or style,
  ``nosniff``, and ``Referrer-Policy: no-referrer``; behind a password, ``public``
  caching (the archived files') becomes ``private``.
"""

import hashlib
import hmac
import sqlite3
from urllib.parse import urlsplit

from flask import (
    Blueprint, abort, current_app, g, jsonify, redirect, render_template, request, session,
    url_for,
)
from flask_wtf.csrf import CSRFError, CSRFProtect, generate_csrf
from flask.sessions import SecureCookieSessionInterface

from archive.sessions import LoginLimit, Sessions
from receiver.storage import image_origin

bp = Blueprint("auth", __name__)
# /v1 (receiver/provider/runware_api.py) checks its own client keys, as Runware checks its.
TOKEN_ROUTES = ("/webhooks/", "/uploads/", "/sandbox/", "/v1")
OPEN_ROUTES = ("/static/", "/login", "/healthz", "/favicon.ico")
BEARER_ROUTES = ("/api/", "/metrics")
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
LOGIN_LIMIT, LOGIN_WINDOW = 5, 900.0  # wrong passwords per address, within seconds
CSRF_FIELD, CSRF_HEADER = "csrf_token", "X-CSRF-Token"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self';"
        " frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@bp.record_once
def _setup(state):
    """Session settings (the key derives from the data folder's secret) and the template
    globals every page needs."""
    app = state.app
    if not app.config.get("SECRET_KEY"):
        secret = app.extensions["webhook_secret"]
        app.config["SECRET_KEY"] = hmac.new(secret, b"session", hashlib.sha256).hexdigest()
    app.config.setdefault("SESSION_COOKIE_HTTPONLY", True)
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    app.session_interface = SessionOverHttps()
    # Flask-WTF checks the tokens; this blueprint decides which requests need one (see
    # guard), so its own check of every POST is off. Tokens live as long as the session
    # (the form of a page left open still sends), and no Referer is demanded over https:
    # every page is sent with Referrer-Policy: no-referrer, so browsers send none.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    app.config.setdefault("WTF_CSRF_SSL_STRICT", False)
    CSRFProtect(app)
    app.jinja_env.globals["csrf_token"] = csrf_token
    catalogue = app.extensions["catalogue"]
    app.extensions["sessions"] = Sessions(
        catalogue, lifetime=app.permanent_session_lifetime.total_seconds())
    app.extensions["login_limit"] = LoginLimit(catalogue, limit=LOGIN_LIMIT, window=LOGIN_WINDOW)
    app.extensions["password_epoch"] = [None, None]  # (digest of the password, its epoch)


class SessionOverHttps(SecureCookieSessionInterface):
    """Flask's signed-cookie session, whose cookie is ``Secure`` whenever the request came
    over https (or ``SESSION_COOKIE_SECURE`` says so: set it behind a proxy that ends TLS,
    where the request reaching us is plain http), so a login made over https is never sent
    back over http."""

    def get_cookie_secure(self, app):
        return super().get_cookie_secure(app) or (bool(request) and request.is_secure)


def csrf_token():
    """The CSRF token for this session's forms (Flask-WTF's: a signed form of the random
    token it keeps in the session)."""
    return generate_csrf()


def password():
    """The UI password, or None when the UI is open."""
    return current_app.config.get("RUNWARE_ARCHIVE_UI_PASSWORD") or None


def _digest(text):
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"ui-login:{text}".encode(), hashlib.sha256).hexdigest()


def password_matches(given):
    """Constant-time comparison of ``given`` with the password (of equal-length digests)."""
    return hmac.compare_digest(_digest(given or ""), _digest(password()))


def password_epoch():
    """The epoch of the current password that session rows are made under: a slow, keyed
    hash (scrypt), so the catalogue holds nothing a password can be cheaply guessed from.
    Computed once per process and password; the first time a process sees a password it
    deletes the sessions of any other (they are refused anyway; this keeps them from
    coming back should the old password return)."""
    cache = current_app.extensions["password_epoch"]
    digest = _digest(password())
    if cache[0] != digest:
        key = current_app.config["SECRET_KEY"].encode()
        salt = hmac.new(key, b"ui-session-epoch", hashlib.sha256).digest()
        epoch = hashlib.scrypt(password().encode(), salt=salt, n=2**14, r=8, p=1,
                               dklen=32).hex()
        sessions().keep_only(epoch)
        cache[:] = [digest, epoch]
    return cache[1]


def sessions():
    """The app's :class:`archive.sessions.Sessions`."""
    return current_app.extensions["sessions"]


def login_limit():
    """The app's :class:`archive.sessions.LoginLimit`."""
    return current_app.extensions["login_limit"]


def logged_in():
    """True when no password is set, or this session is one the catalogue holds, made
    under the current password (looked up once per request)."""
    if password() is None:
        return True
    if "logged_in" not in g:
        g.logged_in = sessions().check(session.get("sid"), password_epoch())
    return g.logged_in


def client_address():
    """The address wrong passwords are counted against (see the module docstring)."""
    return request.remote_addr


def judge_password(given, *, forget=False):
    """``(right, wait)`` for a password attempt: ``wait`` > 0 means the address is locked
    out and the attempt was not judged (right or wrong, the answer is 429). Every
    attempt goes through the shared count, so parallel guesses cannot outrun it.

    :raises sqlite3.OperationalError: the catalogue is busy (answer 503).
    """
    right = password_matches(given)
    wait = login_limit().attempt(client_address(), right, forget=forget)
    return (right and not wait), wait


def retry_after(wait):
    """The ``Retry-After`` value for ``wait`` seconds: whole seconds, never early."""
    return str(int(wait) + 1)


def _bearer_refusal():
    """None when the request carries the password as a Bearer token, else the answer."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return _api_error("login", "log in first, or send Authorization: Bearer <password>",
                          401)
    try:
        right, wait = judge_password(value.strip())
    except sqlite3.OperationalError:
        return _api_error("login", "busy; try again in a moment", 503, retry=1)
    if wait:
        return _api_error("login", "too many wrong passwords from this address; try again "
                          "after Retry-After seconds", 429, retry=wait)
    if right:
        return None
    return _api_error("login", "log in first, or send Authorization: Bearer <password>", 401)


def _api_error(parameter, message, status, retry=None):
    response = jsonify(errors=[{"parameter": parameter, "message": message}])
    response.status_code = status
    if retry is not None:
        response.headers["Retry-After"] = retry_after(retry)
    return response


@bp.before_app_request
def guard():
    """Login first (401 for the API, a redirect for pages), then the CSRF check."""
    path = request.path
    if path.startswith(TOKEN_ROUTES):
        return None
    if not path.startswith(OPEN_ROUTES) and not logged_in():
        if path.startswith(BEARER_ROUTES):
            # None: a script with the password, no cookie, so no CSRF either
            return _bearer_refusal()
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if request.method in UNSAFE_METHODS and not _json_api_request():
        refusal = csrf_refusal()
        if refusal and path.startswith("/api/"):
            return jsonify(errors=[{"parameter": CSRF_FIELD, "message": refusal[1]}]), refusal[0]
        if refusal:
            abort(*refusal)
    return None


def _json_api_request():
    return request.path.startswith("/api/") and request.mimetype == "application/json"


def csrf_refusal():
    """None when the request carries this session's CSRF token (Flask-WTF's check, in
    constant time), else ``(status, why)``: 400 without a token, 403 with one that is not
    this session's (or is not a token)."""
    given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not given:
        return 400, "The form is missing its CSRF token; reload the page and try again."
    try:
        current_app.extensions["csrf"].protect()
    except CSRFError:
        return 403, "The form's CSRF token is not this session's; reload the page and try again."
    return None


@bp.after_app_request
def security_headers(response):
    """The headers of the module docstring, on every response."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    origin = image_origin(current_app)
    if origin:  # /files/ redirects to the bucket: the pages' images come from there too
        response.headers["Content-Security-Policy"] = response.headers[
            "Content-Security-Policy"].replace("img-src 'self' data:",
                                               f"img-src 'self' data: {origin}", 1)
    cache = response.headers.get("Cache-Control", "")
    if password() is not None and "public" in cache:
        # Behind a login, no shared cache may keep a copy for whoever asks next.
        response.headers["Cache-Control"] = cache.replace("public", "private")
    return response


def safe_next(target, default="/"):
    """``target`` if it is a path on this site, else ``default`` (no open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    return default if parts.scheme or parts.netloc else target


@bp.route("/login", methods=["GET", "POST"])
def login():
    """The login form; a right password starts a fresh session."""
    target = safe_next(request.values.get("next"))
    if password() is None:
        return redirect(target)
    error, status = None, 200
    if request.method == "POST":
        try:
            right, wait = judge_password(request.form.get("password"), forget=True)
        except sqlite3.OperationalError:
            return _login_page("The archive is busy; try again in a moment.", target, 503, 1)
        if wait:
            return _login_page(f"Too many wrong passwords from this address; try again in "
                               f"{int(wait // 60) + 1} minutes.", target, 429, wait)
        if right:
            session.clear()  # a fresh session: nothing from before the login carries over
            session["sid"] = sessions().start(password_epoch())
            return redirect(target)
        error, status = "That is not the password.", 401
    return render_template("auth/login.html", error=error, next=target), status


def _login_page(error, target, status, retry):
    response = current_app.make_response((render_template(
        "auth/login.html", error=error, next=target), status))
    response.headers["Retry-After"] = retry_after(retry)
    return response


@bp.post("/logout")
def logout():
    """End the session: its row goes, so every copy of the cookie is refused from now on
    (its CSRF token goes with it)."""
    sessions().end(session.get("sid"))
    session.clear()
    g.logged_in = False
    return redirect(url_for("auth.login") if password() else "/")
