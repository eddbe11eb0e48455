"""Which host names the service answers to, and how far it trusts a reverse proxy.

**The Host check** (:class:`HostCheck`). A web page on a domain the attacker controls can
make its name resolve to 127.0.0.1 once the page has loaded (DNS rebinding). The browser
then treats this service as the page's own origin: it can POST JSON to ``/api/tasks``
(spending money) and read every answer (the whole archive), and no CSRF token or CORS rule
stands in the way, since for the browser nothing is cross-origin. What the browser cannot
change is the ``Host`` header: it names the attacker's domain. So every request, the
webhook included, is answered only under the names the service is served under:

* ``localhost``, ``127.0.0.1`` and ``[::1]``, always;
* the address ``serve`` listens on, as recorded (``config.record_server_address``), unless
  it is ``0.0.0.0`` or ``::``: those are no name anyone types, and which addresses of the
  machine clients use is not known, so such a service needs its names configured;
* the host of ``RUNWARE_ARCHIVE_PUBLIC_URL``;
* each name in ``RUNWARE_ARCHIVE_ALLOWED_HOSTS`` (comma-separated; ``*`` turns the check off).

Only the name is compared, never the port: a proxy in front may forward from another port,
and a rebinding page cannot choose its name's port any more than its name.

It is one WSGI middleware, outermost but for ``ProxyFix``, because the webhook is answered
in front of Flask (receiver/provider/webhooks.py): Flask's ``TRUSTED_HOSTS`` (3.1) would guard only
the requests that reach Flask, and its 400 is an HTML page where the API speaks JSON. The
name is read with Werkzeug's ``get_host`` (which also turns characters no host name has into
no name), but matched here: Werkzeug 3.1's ``host_is_trusted``, behind ``TRUSTED_HOSTS``
too, compares case-sensitively and cuts every entry at its first ``:``, so an IPv6 entry
such as ``[::1]`` can never match.

**A reverse proxy** (``RUNWARE_ARCHIVE_PROXY_FIX``). Off by default: then
``X-Forwarded-*`` headers are the client's own words and are ignored. Set, the app is
wrapped in Werkzeug's ``ProxyFix`` with the counts given, outside the Host check, so the
check sees a forwarded host only when ``x_host`` says that proxies set it.
"""

import json
from urllib.parse import urlsplit

from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wsgi import get_host

from receiver import config as settings
from receiver.views.auth import SECURITY_HEADERS

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
UNSPECIFIED = frozenset({"0.0.0.0", "[::]", ""})  # "every interface": not a name
JSON_PREFIXES = ("/api/", "/webhooks/", "/sandbox/")
PROXY_FIX_COUNTS = ("x_for", "x_proto", "x_host", "x_port", "x_prefix")


def host_name(host):
    """The name of a ``host[:port]`` (``[v6]`` keeps its brackets), lower-cased, no port."""
    host = host.strip().lower()
    if host.startswith("["):
        return host.partition("]")[0] + "]"
    if host.count(":") > 1:  # a bare IPv6 address, as a setting may spell it
        return f"[{host}]"
    return host.partition(":")[0]


def _url_name(url):
    name = urlsplit(url).hostname or ""  # lower-cased, IPv6 without brackets
    return f"[{name}]" if ":" in name else name


def _setting_name(entry):
    try:
        return host_name(entry).encode("idna").decode("ascii")  # the Host header's spelling
    except UnicodeError:
        return host_name(entry)


def allowed_names(config, bound_url=None):
    """The host names answered, or None when ``RUNWARE_ARCHIVE_ALLOWED_HOSTS`` is ``*``.

    :param bound_url: the address served on (default: ``config.local_url``).
    """
    extra = [e for e in (config.get("RUNWARE_ARCHIVE_ALLOWED_HOSTS") or "").split(",")
             if e.strip()]
    if any(e.strip() == "*" for e in extra):
        return None
    names = set(LOOPBACK_NAMES)
    names.update(_setting_name(e) for e in extra)
    bound = _url_name(bound_url or settings.local_url(config))
    if bound not in UNSPECIFIED:
        names.add(bound)
    if config.get("RUNWARE_ARCHIVE_PUBLIC_URL"):
        names.add(_url_name(config["RUNWARE_ARCHIVE_PUBLIC_URL"]))
    names.discard("")
    return frozenset(names)


class HostCheck:
    """WSGI middleware: a request whose ``Host`` is not one of :func:`allowed_names` gets
    400 (``invalidHost``) and never reaches ``app``.

    The settings are read per request (cheaply: the names are kept until a setting or the
    recorded address changes), because the address served on is recorded after the app
    is built.
    """

    def __init__(self, flask_app, app):
        self.config, self.logger, self.app = flask_app.config, flask_app.logger, app
        self._key = self._names = self._recorded = None

    def names(self):
        bound = self.config.get("SERVER_URL")
        if bound is None:
            # A gunicorn worker: serve recorded the address in a file before the workers
            # started; read it once, not per request.
            if self._recorded is None:
                self._recorded = settings.local_url(self.config)
            bound = self._recorded
        key = (bound, self.config.get("RUNWARE_ARCHIVE_PUBLIC_URL"),
               self.config.get("RUNWARE_ARCHIVE_ALLOWED_HOSTS"))
        if key != self._key:
            self._names, self._key = allowed_names(self.config, bound), key
        return self._names

    def __call__(self, environ, start_response):
        names = self.names()
        if names is None:
            return self.app(environ, start_response)
        host = get_host(environ)  # "" for a missing or malformed Host
        name = host_name(host) if host else ""
        if name in names:
            return self.app(environ, start_response)
        return self.refuse(environ, start_response, name)

    def refuse(self, environ, start_response, name):
        if name:
            message = (f"this service does not answer to the host name {name[:100]!r} "
                       "(a guard against DNS rebinding); if it is one of the service's "
                       "own names, add it to RUNWARE_ARCHIVE_ALLOWED_HOSTS")
        else:
            message = "the request's Host header is missing or not a valid host name"
        path = environ.get("PATH_INFO", "")
        self.logger.warning("refused a request for %r to host %r", path[:100], name[:100])
        if path.startswith(JSON_PREFIXES):
            body = json.dumps({"errors": [{"code": "invalidHost", "message": message}]})
            kind = "application/json"
        else:
            body, kind = f"Bad Request: {message}\n", "text/plain; charset=utf-8"
        body = body.encode()
        start_response("400 Bad Request", [
            ("Content-Type", kind), ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"), *SECURITY_HEADERS.items()])
        return [body]


def proxy_fix_counts(value):
    """``RUNWARE_ARCHIVE_PROXY_FIX`` as ProxyFix's counts, or None for off.

    ``N``: N proxies, trusted for ``X-Forwarded-For`` and ``-Proto`` (ProxyFix's own
    defaults: the headers every proxy sets). ``x_for=1,x_host=1``: exactly those, every
    count not named 0. ``0``, ``off`` or nothing: off.

    :raise ValueError: naming what is wrong.
    """
    text = str(value or "").strip().lower()
    if text in ("", "0", "off", "no", "false"):
        return None
    if text.isascii() and text.isdigit():  # ASCII: '²' is a digit to isdigit, not to int
        return {"x_for": int(text), "x_proto": int(text)}
    counts = {}
    for part in text.split(","):
        key, sep, number = (p.strip() for p in part.partition("="))
        if key not in PROXY_FIX_COUNTS or not sep or not (number.isascii()
                                                          and number.isdigit()):
            raise ValueError(f"RUNWARE_ARCHIVE_PROXY_FIX={value!r}: expected a number of "
                             "proxies, or counts such as x_for=1,x_proto=1,x_host=1 (of "
                             f"{', '.join(PROXY_FIX_COUNTS)})")
        counts[key] = int(number)
    return counts if any(counts.values()) else None


def wrap(flask_app, app):
    """``app`` behind the Host check, and behind ``ProxyFix`` when configured."""
    app = HostCheck(flask_app, app)
    try:
        counts = proxy_fix_counts(flask_app.config.get("RUNWARE_ARCHIVE_PROXY_FIX"))
    except ValueError as exc:
        raise SystemExit(str(exc))
    if counts:
        app = ProxyFix(app, **{k: counts.get(k, 0) for k in PROXY_FIX_COUNTS})
    return app
