"""The browser's side of security: login, CSRF tokens, and headers on every response.

- ``RUNWARE_ARCHIVE_UI_PASSWORD`` set: every page, ``/files``, ``/thumbs``, ``/download``
  and the JSON API need a login (a session cookie, HttpOnly, SameSite=Lax) or, for the
  JSON API and ``/metrics`` only, ``Authorization: Bearer <password>``. The webhook,
  upload and sandbox routes keep their own per-task tokens and never see a login.
- CSRF: a random token bound to the session, sent back in a hidden ``csrf_token`` field
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
import secrets
import threading
import time
from urllib.parse import urlsplit

from flask import (
    Blueprint, abort, current_app, jsonify, redirect, render_template, request, session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface

bp = Blueprint("auth", __name__)
TOKEN_ROUTES = ("/webhooks/", "/uploads/", "/sandbox/")
OPEN_ROUTES = ("/static/", "/login", "/healthz")
BEARER_ROUTES = ("/api/", "/metrics")
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
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
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.extensions["failed_logins"] = FailedLogins()


class SessionOverHttps(SecureCookieSessionInterface):
    """Flask's signed-cookie session, whose cookie is ``Secure`` whenever the request came
    over https (or ``SESSION_COOKIE_SECURE`` says so: set it behind a proxy that ends TLS,
    where the request reaching us is plain http), so a login made over https is never sent
    back over http."""

    def get_cookie_secure(self, app):
        return super().get_cookie_secure(app) or (bool(request) and request.is_secure)


def csrf_token():
    """This session's CSRF token, made on first use."""
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return session[CSRF_FIELD]


def password():
    """The UI password, or None when the UI is open."""
    return current_app.config.get("RUNWARE_ARCHIVE_UI_PASSWORD") or None


def _digest(text):
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"ui-login:{text}".encode(), hashlib.sha256).hexdigest()


def password_matches(given):
    """Constant-time comparison of ``given`` with the password (of equal-length digests)."""
    return hmac.compare_digest(_digest(given or ""), _digest(password()))


def logged_in():
    """True when no password is set, or this session logged in with the current one."""
    if password() is None:
        return True
    return hmac.compare_digest(session.get("login", ""), _digest(password()))


class FailedLogins:
    """Wrong passwords per client address, kept in this process: after ``limit`` within
    ``window`` seconds, that address may not try again until the window has passed, so
    the password cannot be guessed at the speed of the network."""

    def __init__(self, limit=5, window=900.0, clock=time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self._lock, self._failures = threading.Lock(), {}

    def wait(self, address):
        """Seconds before ``address`` may try again; 0 when it may now."""
        with self._lock:
            recent = self._recent(address)
            if len(recent) < self.limit:
                return 0.0
            return max(0.0, recent[0] + self.window - self.clock())

    def failed(self, address):
        """Count a wrong password from ``address``."""
        with self._lock:
            self._recent(address).append(self.clock())
            if len(self._failures) > 10_000:  # bounded memory under a spray of addresses
                for old in [a for a in self._failures if not self._recent(a)]:
                    del self._failures[old]

    def succeeded(self, address):
        """Forget ``address``'s failures."""
        with self._lock:
            self._failures.pop(address, None)

    def _recent(self, address):
        now = self.clock()
        recent = [t for t in self._failures.get(address, ()) if t > now - self.window]
        self._failures[address] = recent
        return recent


def failed_logins():
    """The app's :class:`FailedLogins`."""
    return current_app.extensions["failed_logins"]


def _bearer_ok():
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value:
        return False
    if failed_logins().wait(request.remote_addr):
        return False
    if password_matches(value.strip()):
        return True
    failed_logins().failed(request.remote_addr)
    return False


@bp.before_app_request
def guard():
    """Login first (401 for the API, a redirect for pages), then the CSRF check."""
    path = request.path
    if path.startswith(TOKEN_ROUTES):
        return None
    if not path.startswith(OPEN_ROUTES) and not logged_in():
        if path.startswith(BEARER_ROUTES) and _bearer_ok():
            return None  # a script with the password: no cookie, so no CSRF either
        if path.startswith(BEARER_ROUTES):
            return jsonify(errors=[{"parameter": "login", "message": "log in first, or send "
                                    "Authorization: Bearer <password>"}]), 401
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
    """None when the request carries this session's CSRF token, else ``(status, why)``:
    400 without a token, 403 with one that is not this session's."""
    given = request.form.get(CSRF_FIELD) or request.headers.get(CSRF_HEADER)
    if not given:
        return 400, "The form is missing its CSRF token; reload the page and try again."
    expected = session.get(CSRF_FIELD)
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        return 403, "The form's CSRF token is not this session's; reload the page and try again."
    return None


@bp.after_app_request
def security_headers(response):
    """The headers of the module docstring, on every response."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
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
        address = request.remote_addr
        wait = failed_logins().wait(address)
        if wait:
            error = (f"Too many wrong passwords from this address; try again in "
                     f"{int(wait // 60) + 1} minutes.")
            response = current_app.make_response((render_template(
                "auth/login.html", error=error, next=target), 429))
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        if password_matches(request.form.get("password")):
            failed_logins().succeeded(address)
            session.clear()
            session["login"] = _digest(password())
            return redirect(target)
        failed_logins().failed(address)
        error, status = "That is not the password.", 401
    return render_template("auth/login.html", error=error, next=target), status


@bp.post("/logout")
def logout():
    """End the session (its CSRF token with it)."""
    session.clear()
    return redirect(url_for("auth.login") if password() else "/")
