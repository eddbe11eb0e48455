"""The SSRF-safe image download (no Flask), following OWASP's SSRF prevention rules.

A URL is fetched only if, for it and for every redirect (at most 3):

* its scheme is ``https``, or ``http`` for an allowlist entry written ``http://host[:port]``;
* it has no user info and its ``host[:port]`` is exactly an allowlist entry;
* every address the host resolves to (``socket.getaddrinfo``) is a public one: loopback,
  private, link-local, shared, reserved, multicast, unspecified, IPv4-mapped, 6to4, Teredo
  and NAT64 addresses are refused unless the entry names that very address (an IP literal
  such as ``127.0.0.1:5000``) or is the service's own sandbox;
* the connection goes to the address that was checked (no second DNS lookup), with the
  original ``Host`` header and, for https, SNI and certificate check for the host name.

The body is streamed to a temporary file in the store with a byte cap, a connect timeout
and a total deadline (enforced by a timer that shuts the socket, so a server dribbling one
byte a second cannot hold a worker; the name lookup is held to it too, on a small pool of
threads, since ``getaddrinfo`` cannot be interrupted); then it must decode as an image
(:mod:`archive.images`).
"""

import concurrent.futures
import contextlib
import hashlib
import http.client
import ipaddress
import os
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from archive.images import BadImage
from archive.parsing import parse_int

CONNECT_TIMEOUT = 5.0
_lookups = {}  # pid -> the name-lookup threads (threads do not survive a fork)
MAX_REDIRECTS = 3
REDIRECTS = (301, 302, 303, 307, 308)
DEFAULT_PORTS = {"http": 80, "https": 443}
CHUNK = 64 * 1024
HOSTNAME = re.compile(r"^(?=.{1,253}\.?$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*"
                      r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.?$")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Checked in this order, so each refusal names the most telling category.
CATEGORIES = ("loopback", "unspecified", "link_local", "multicast", "private", "reserved",
              "site_local")


class Refused(Exception):
    """The URL breaks a rule above; nothing was (or will be) connected to."""


class PermanentError(Exception):
    """The download failed in a way retrying will not fix (4xx, not an image, too big)."""


class TransientError(Exception):
    """The download failed in a way that may pass (connection, timeout, 429, 5xx)."""


@dataclass(frozen=True)
class AllowedHost:
    """One allowlist entry: ``http`` allows plain http, ``private`` non-public addresses."""

    host: str
    port: int | None
    http: bool = False
    private: bool = False

    def matches(self, scheme, host, port):
        """Whether this entry admits ``scheme://host:port`` (ports made explicit)."""
        return (self.host == host and (self.port or DEFAULT_PORTS[scheme]) == port
                and (scheme == "https" or self.http))


def parse_entry(entry, *, trusted=False):
    """An :class:`AllowedHost` from ``host[:port]`` or ``http://host[:port]``.

    :param trusted: the service's own sandbox (http, and its address may be loopback).
    :raises ValueError: an entry that is not a host[:port].
    """
    entry = entry.strip().lower()
    http = trusted or entry.startswith("http://")
    parts = urlsplit(entry if "://" in entry else f"https://{entry}")
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") \
            or parts.username or parts.password:
        raise ValueError(f"not a host[:port] entry: {entry!r}")
    host = parts.hostname
    return AllowedHost(host, parts.port, http, trusted or _is_ip_literal(host))


def _is_ip_literal(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def non_public(ip):
    """Why ``ip`` (an ipaddress object) is not a public address, or None if it is."""
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return f"an IPv4-mapped address (of {ip.ipv4_mapped})"
        if ip.sixtofour is not None:
            return "a 6to4 address"
        if ip.teredo is not None:
            return "a Teredo address"
        if ip in NAT64:
            return "a NAT64 address"
    for name in CATEGORIES:
        if getattr(ip, f"is_{name}", False):
            article = "an" if name[0] in "aeiou" else "a"
            return f"{article} {name.replace('_', '-')} address"
    if not ip.is_global:
        return "not a global address"
    return None


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect and what to ask for."""

    scheme: str
    host: str
    port: int
    request_path: str
    entry: AllowedHost


class Policy:
    """The rules for one allowlist.

    :param entries: ``host[:port]`` / ``http://host[:port]`` strings.
    :param trusted: entries for the service's own sandbox (http and loopback allowed).
    :param resolver: ``socket.getaddrinfo`` (tests may inject a resolver).
    :param ssl_context: for https (default: the system's trust store).
    """

    def __init__(self, entries, *, trusted=(), max_bytes=50 * 1024 * 1024,
                 connect_timeout=CONNECT_TIMEOUT, total_timeout=30.0,
                 max_redirects=MAX_REDIRECTS, resolver=socket.getaddrinfo, ssl_context=None):
        self.allowed = [parse_entry(e) for e in entries if e.strip()] + [
            parse_entry(e, trusted=True) for e in trusted if e.strip()]
        self.max_bytes, self.max_redirects = max_bytes, max_redirects
        self.connect_timeout, self.total_timeout = connect_timeout, total_timeout
        self.resolver = resolver
        self._ssl_context = ssl_context

    @property
    def ssl_context(self):
        """The TLS context for https, made on first use (loading the trust store is slow)."""
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()
        return self._ssl_context

    def check(self, url):
        """The :class:`Target` of ``url``; :raises Refused: a rule is broken."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise Refused(f"malformed URL: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise Refused(f"scheme {scheme or 'none'!r} is not allowed (https only)")
        if parts.username is not None or parts.password is not None:
            raise Refused("URLs with user info are not allowed")
        host = (parts.hostname or "").rstrip(".")
        if not host or not (HOSTNAME.match(host) or ("[" in parts.netloc and _is_ip_literal(host))):
            raise Refused(f"host {host or 'none'!r} is not a valid host name")
        port = port or DEFAULT_PORTS[scheme]
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if not path.isascii() or not path.isprintable() or " " in path:
            raise Refused("the URL's path has characters that must be percent-encoded")
        for entry in self.allowed:
            if entry.matches(scheme, host, port):
                return Target(scheme, host, port, path, entry)
        if any(e.host == host and (e.port or DEFAULT_PORTS[scheme]) == port for e in self.allowed):
            raise Refused(f"plain http is not allowed for {host}:{port} (https only)")
        raise Refused(f"host {host}:{port} is not on the image host allowlist")

    def resolve(self, target, timeout=None):
        """Every address of the target, each checked: a list of getaddrinfo tuples.

        :param timeout: seconds to wait for the answer (default: the connect timeout).
        :raises Refused: an address is not public and the entry does not allow it.
        :raises TransientError: the name does not resolve (now, or in time).
        """
        timeout = self.connect_timeout if timeout is None else max(timeout, 0.001)
        pool = _lookups.get(os.getpid())
        if pool is None:
            pool = _lookups.setdefault(os.getpid(), concurrent.futures.ThreadPoolExecutor(
                4, thread_name_prefix="dns"))
        lookup = pool.submit(self.resolver, target.host, target.port, type=socket.SOCK_STREAM)
        try:
            infos = lookup.result(timeout)
        except concurrent.futures.TimeoutError:
            lookup.cancel()  # if it has not started; a started lookup ends on its own
            raise TransientError(f"resolving {target.host} took longer than "
                                 f"{timeout:g}s") from None
        except (socket.gaierror, UnicodeError) as exc:
            raise TransientError(f"cannot resolve {target.host}: {exc}") from None
        infos = [i for i in infos if i[0] in (socket.AF_INET, socket.AF_INET6)]
        if not infos:
            raise TransientError(f"{target.host} has no IPv4 or IPv6 address")
        for info in infos:
            ip = ipaddress.ip_address(info[4][0].split("%")[0])
            reason = non_public(ip)
            if reason and not (target.entry.private and _allowed_private(target.entry, ip)):
                raise Refused(f"{target.host} resolves to {ip}, {reason}")
        return infos


def _allowed_private(entry, ip):
    """An IP-literal entry admits only itself; a trusted (sandbox) entry its own names."""
    if _is_ip_literal(entry.host):
        return ipaddress.ip_address(entry.host) == ip
    return True


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to one already-checked address: ``connect`` never resolves."""

    def __init__(self, target, info, policy):
        super().__init__(target.host, target.port, timeout=policy.connect_timeout)
        self.default_port = DEFAULT_PORTS[target.scheme]  # Host header: no ":443"
        self._info, self._target, self._policy = info, target, policy
        self.guard = None

    def connect(self):
        family, _, _, _, sockaddr = self._info
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(self._policy.connect_timeout)
            sock.connect(sockaddr)
            if self._target.scheme == "https":
                sock = self._policy.ssl_context.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

    def close(self):
        """Close, and stop the deadline timer."""
        if self.guard is not None:
            self.guard.cancel()
        super().close()


def download(url, policy, store):
    """Fetch ``url`` under ``policy`` into ``store``; returns a :class:`StoredImage`.

    :raises Refused: a rule forbids the URL or a redirect.
    :raises PermanentError: 4xx, too big, not an image.
    :raises TransientError: connection trouble, timeout, 429 or 5xx.
    """
    deadline = time.monotonic() + policy.total_timeout
    for hop in range(policy.max_redirects + 1):
        try:
            target = policy.check(url)
            infos = policy.resolve(target, min(policy.connect_timeout,
                                               deadline - time.monotonic()))
        except Refused as exc:
            raise Refused(f"redirect to {url} refused: {exc}" if hop else str(exc)) from None
        conn, response = _open(target, infos, policy, deadline)
        try:
            if response.status not in REDIRECTS:
                return _receive(response, conn, policy, store, deadline)
            location = response.getheader("Location")
            if not location:
                raise PermanentError(f"HTTP {response.status} without a Location header")
            url = urljoin(url, location)
        finally:
            conn.close()
    raise Refused(f"more than {policy.max_redirects} redirects")


def _open(target, infos, policy, deadline):
    """Connect to the first reachable checked address and read the response head."""
    errors = []
    for info in infos:
        conn = _PinnedConnection(target, info, policy)
        try:
            conn.connect()
            conn.guard = _Deadline(conn.sock, deadline)
            conn.request("GET", target.request_path, headers={
                "Accept": "image/*", "User-Agent": "runware-archive"})
            response = conn.getresponse()
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            raise PermanentError(f"TLS certificate refused: {exc.verify_message}") from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            if time.monotonic() >= deadline:
                raise TransientError(f"no answer within {policy.total_timeout:g}s") from None
            errors.append(f"{info[4][0]}: {type(exc).__name__}: {exc}")
            continue
        _check_status(response, conn)
        return conn, response
    raise TransientError("could not connect: " + "; ".join(errors))


def _check_status(response, conn):
    status = response.status
    if status == 200 or status in REDIRECTS:
        return
    conn.close()
    if status in (408, 425, 429) or status >= 500:
        raise TransientError(f"HTTP {status} {response.reason}")
    raise PermanentError(f"HTTP {status} {response.reason}")


def _content_length(response):
    """The ``Content-Length`` as an int, None without one.

    http.client drops a malformed one and reads to the close; this refuses it for good
    (a server wrong about its own body will not mend by being asked again). Only ASCII
    digits count: '²' is a digit to ``str.isdigit`` and an error to ``int()``.
    """
    text = response.getheader("Content-Length")
    if text is None:
        return None
    try:
        return parse_int(text.strip(" \t"), minimum=0)
    except ValueError:
        raise PermanentError(f"Content-Length {text[:40]!r} is not a number of bytes") from None


def _receive(response, conn, policy, store, deadline):
    """Stream the body to a temporary file (capped, hashed), then hand it to the store."""
    length = _content_length(response)
    if length is not None and length > policy.max_bytes:
        raise PermanentError(f"Content-Length {length} is over the {policy.max_bytes}-byte cap")
    digest, size = hashlib.sha256(), 0
    f, tmp = store.temp_file()
    try:
        with f:
            while chunk := _read(response, conn, policy, deadline):
                size += len(chunk)
                if size > policy.max_bytes:
                    raise PermanentError(f"body over the {policy.max_bytes}-byte cap")
                digest.update(chunk)
                f.write(chunk)
        if length is not None and size != length:  # read1 ends quietly at EOF
            raise TransientError(f"connection broke after {size} of {length} bytes")
        try:
            return store.add_file(tmp, sha256=digest.hexdigest())
        except BadImage as exc:
            raise PermanentError(str(exc)) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _read(response, conn, policy, deadline):
    """One chunk of the body (at most one read from the socket), within the deadline."""
    if time.monotonic() >= deadline:
        raise TransientError(f"download took longer than {policy.total_timeout:g}s")
    try:
        return response.read1(CHUNK)
    except (OSError, http.client.HTTPException) as exc:
        if time.monotonic() >= deadline or conn.guard.fired:
            raise TransientError(f"download took longer than {policy.total_timeout:g}s") \
                from None
        raise TransientError(f"connection broke: {type(exc).__name__}: {exc}") from None


class _Deadline:
    """Shuts the socket down when the total deadline passes, whatever is blocked on it."""

    def __init__(self, sock, deadline):
        self.sock, self.fired = sock, False
        self.timer = threading.Timer(max(0.0, deadline - time.monotonic()), self._fire)
        self.timer.daemon = True
        self.timer.start()

    def _fire(self):
        self.fired = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: nothing left to interrupt

    def cancel(self):
        """Stop the timer (the download is over)."""
        self.timer.cancel()

