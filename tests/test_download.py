"""The SSRF-safe download, over real loopback sockets: forbidden URLs are never connected to
(a listening socket counts every connection), hostile bytes never reach the store, and the
connection goes to the address that was checked, with the name kept for Host and TLS."""

import hashlib
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from hypothesis import given, settings, strategies as st

from archive.safe_fetch import (PermanentError, Policy, Refused, TransientError, download,
                              non_public)
from archive.filestore import FileStore
from tests.imagehost import (ConnectionRecorder, ImageHost, dribble, endless, headers_then,
                             picture, png_bomb, redirect, status)

JPEG = picture("JPEG", size=(320, 240))


@pytest.fixture
def recorder():
    rec = ConnectionRecorder("127.0.0.1")
    yield rec
    rec.stop()


@pytest.fixture
def recorder6():
    try:
        rec = ConnectionRecorder("::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    yield rec
    rec.stop()


@pytest.fixture
def store(tmp_path):
    return FileStore(tmp_path / "data", max_bytes=100_000)


def visible(store):
    return [f for folder, dirs, files in os.walk(store.images)
            if not folder.startswith(store.tmp) for f in files]


def not_allowlisted(p, p6):
    """URLs that the allowlist alone refuses, each with the reason it must give."""
    return [
        (f"http://127.0.0.1:{p}/a.jpg", "not on the image host allowlist"),
        (f"https://127.0.0.1:{p}/a.jpg", "not on the image host allowlist"),
        (f"http://[::1]:{p6}/a.jpg", "not on the image host allowlist"),
        (f"http://[::ffff:127.0.0.1]:{p}/a.jpg", "not on the image host allowlist"),
        (f"http://0.0.0.0:{p}/a.jpg", "not on the image host allowlist"),
        ("http://169.254.169.254/latest/meta-data/", "not on the image host allowlist"),
        ("https://10.0.0.1/a.jpg", "not on the image host allowlist"),
        ("https://172.16.0.1/a.jpg", "not on the image host allowlist"),
        ("https://192.168.1.1/a.jpg", "not on the image host allowlist"),
        (f"http://2130706433:{p}/a.jpg", "not on the image host allowlist"),
        (f"http://0x7f000001:{p}/a.jpg", "not on the image host allowlist"),
        (f"http://localhost:{p}/a.jpg", "not on the image host allowlist"),
        ("http://im.runware.ai/image/a.jpg", "plain http is not allowed"),
        (f"https://im.runware.ai@127.0.0.1:{p}/a.jpg", "user info"),
        ("file:///etc/passwd", "scheme 'file' is not allowed"),
        (f"ftp://127.0.0.1:{p}/a.jpg", "scheme 'ftp' is not allowed"),
        ("data:image/png;base64,iVBORw0KGgo=", "scheme 'data' is not allowed"),
        (f"gopher://127.0.0.1:{p}/_GET", "scheme 'gopher' is not allowed"),
        ("https://exa mple.com/a.jpg", "not a valid host name"),
        ("https:///a.jpg", "not a valid host name"),
        ("https://im.runware.ai/a b.jpg", "must be percent-encoded"),
        ("https://im.runware.ai/a.jpg\r\nX-Injected: 1", "must be percent-encoded"),
        ("https://im.runware.ai/bild-ä.jpg", "must be percent-encoded"),
    ]


def test_urls_off_the_allowlist_are_refused_unconnected(recorder, recorder6, store):
    policy = Policy(["im.runware.ai"])
    for url, reason in not_allowlisted(recorder.port, recorder6.port):
        with pytest.raises(Refused, match=reason):
            download(url, policy, store)
    time.sleep(0.1)
    assert (recorder.accepted, recorder6.accepted) == (0, 0)
    assert visible(store) == [] and os.listdir(store.tmp) == []


def fake_dns(table):
    """A resolver: names in ``table`` get those addresses, others the system's answer."""
    def resolve(host, port, type=0):
        if host not in table:
            return socket.getaddrinfo(host, port, type=type)
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (a, port, 0, 0) if ":" in a else (a, port)) for a in table[host]]
    return resolve


def test_allowlisted_names_resolving_to_forbidden_addresses_are_refused(recorder, store):
    p = recorder.port
    table = {"metadata.test": ["169.254.169.254"], "ten.test": ["10.1.2.3"],
             "sixteen.test": ["172.16.5.4"], "home.test": ["192.168.0.10"],
             "shared.test": ["100.64.0.1"], "zero.test": ["0.0.0.0"],
             "mixed.test": ["93.184.216.34", "127.0.0.1"], "mapped.test": ["::ffff:127.0.0.1"],
             "sixtofour.test": ["2002:7f00:1::1"], "nat64.test": ["64:ff9b::7f00:1"],
             "multicast.test": ["224.0.0.1"]}
    cases = [("localhost", "127.0.0.1, a loopback address"),
             ("2130706433", "127.0.0.1, a loopback address"),
             ("0x7f000001", "127.0.0.1, a loopback address"),
             ("metadata.test", "a link-local address"), ("ten.test", "a private address"),
             ("sixteen.test", "a private address"), ("home.test", "a private address"),
             ("shared.test", "not a global address"), ("zero.test", "an unspecified address"),
             ("mixed.test", "127.0.0.1, a loopback address"),
             ("mapped.test", "an IPv4-mapped address"), ("sixtofour.test", "a 6to4 address"),
             ("nat64.test", "a NAT64 address"), ("multicast.test", "a multicast address")]
    policy = Policy([f"{host}:{p}" for host, _ in cases], resolver=fake_dns(table))
    for host, reason in cases:
        with pytest.raises(Refused, match=reason):
            download(f"https://{host}:{p}/a.jpg", policy, store)
    time.sleep(0.1)
    assert recorder.accepted == 0


def test_an_ip_literal_entry_allows_only_that_address(recorder, store):
    policy = Policy([f"http://127.0.0.2:{recorder.port}"])
    with pytest.raises(Refused):
        download(f"http://127.0.0.1:{recorder.port}/a.jpg", policy, store)
    assert recorder.accepted == 0


@pytest.fixture
def host():
    h = ImageHost({"/ok.jpg": JPEG})
    yield h
    h.stop()


def test_redirects_are_followed_only_inside_the_allowlist(recorder, host, store):
    p = recorder.port
    host.routes.update({
        "/to-recorder": redirect(f"http://127.0.0.1:{p}/a.jpg"),
        "/to-localhost": redirect(f"http://localhost:{host.port}/ok.jpg"),
        "/to-file": redirect("file:///etc/passwd"),
        "/to-metadata": redirect("http://169.254.169.254/latest/meta-data/"),
        "/hop1": redirect("/hop2", 301), "/hop2": redirect(f"{host.url}/ok.jpg", 307),
        "/loop1": redirect("/loop2"), "/loop2": redirect("/loop3"),
        "/loop3": redirect("/loop4"), "/loop4": redirect("/ok.jpg"),
    })
    policy = Policy([f"http://{host.netloc}"])
    for path, reason in [("/to-recorder", "not on the image host allowlist"),
                         ("/to-localhost", "not on the image host allowlist"),
                         ("/to-file", "scheme 'file'"),
                         ("/to-metadata", "not on the image host allowlist"),
                         ("/loop1", "more than 3 redirects")]:
        with pytest.raises(Refused, match=reason):
            download(host.url + path, policy, store)
    assert recorder.accepted == 0
    stored = download(host.url + "/hop1", policy, store)
    assert stored.sha256 == hashlib.sha256(JPEG).hexdigest()


@pytest.mark.parametrize("route, error, reason", [
    (headers_then(lambda w: w.write(b"\xff" * 1000), length=10_000_000), PermanentError,
     "Content-Length 10000000 is over the 100000-byte cap"),
    (headers_then(lambda w: w.write(JPEG), length="²"), PermanentError,
     "Content-Length '²' is not a number of bytes"),
    (headers_then(lambda w: w.write(b"\xff\xd8" + b"\x00" * 300_000)), PermanentError,
     "body over the 100000-byte cap"),
    (headers_then(endless), PermanentError, "body over the 100000-byte cap"),
    (headers_then(dribble(JPEG)), TransientError, "took longer than 1.5s"),
    (headers_then(lambda w: w.write(JPEG[:len(JPEG) // 2]), length=len(JPEG) // 2),
     PermanentError, "damaged image"),
    (headers_then(lambda w: w.write(JPEG[:len(JPEG) // 2]), length=len(JPEG)),
     TransientError, "connection broke"),
    (headers_then(lambda w: w.write(b"<!doctype html><title>login</title>"),
                  content_type="image/jpeg"), PermanentError, "not an image"),
    (headers_then(lambda w: w.write(png_bomb())), PermanentError, "decompression bomb"),
    (status(404), PermanentError, "HTTP 404"),
    (status(410), PermanentError, "HTTP 410"),
    (status(429), TransientError, "HTTP 429"),
    (status(503), TransientError, "HTTP 503"),
    (redirect(""), PermanentError, "without a Location"),
], ids=["content-length over cap", "content-length no number", "body over cap", "endless", "1 byte a second",
        "truncated", "cut short", "html as jpg", "bomb", "404", "410", "429", "503",
        "empty location"])
def test_hostile_answers_are_aborted_and_leave_nothing(host, store, route, error, reason):
    host.routes["/x.jpg"] = route
    policy = Policy([f"http://{host.netloc}"], max_bytes=100_000, total_timeout=1.5)
    started = time.monotonic()
    with pytest.raises(error, match=reason):
        download(f"{host.url}/x.jpg", policy, store)
    assert time.monotonic() - started < 4
    assert visible(store) == [] and os.listdir(store.tmp) == []


def test_a_good_image_is_stored_under_its_sha256(host, store):
    stored = download(f"{host.url}/ok.jpg", Policy([f"http://{host.netloc}"]), store)
    assert (stored.ext, stored.width, stored.height) == ("jpg", 320, 240)
    with open(store.path(stored.sha256, "jpg"), "rb") as f:
        assert f.read() == JPEG


# -- https: the checked address is used, the name goes into Host, SNI and the cert check --

@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=images.test", "-addext", "subjectAltName=DNS:images.test",
                    "-keyout", folder / "key.pem", "-out", folder / "cert.pem"],
                   check=True, capture_output=True)
    return folder / "cert.pem", folder / "key.pem"


@pytest.fixture
def https_host(certificate):
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.headers["Host"], self.connection.server_hostname))
            self.send_response(200)
            self.send_header("Content-Length", str(len(JPEG)))
            self.end_headers()
            self.wfile.write(JPEG)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    names = {}
    context.sni_callback = lambda sock, name, ctx: names.update(last=name)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, args=(0.005,), daemon=True).start()
    server.seen, server.names = seen, names
    yield server
    server.shutdown()
    server.server_close()


def test_https_connects_to_the_checked_address_with_the_name_for_host_sni_and_cert(
        https_host, certificate, store):
    port = https_host.server_port
    resolved = []

    def resolver(host, port_, type=0):  # images.test exists only here: no second lookup
        resolved.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port_))]

    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    policy = Policy([], trusted=[f"images.test:{port}"], resolver=resolver,
                    ssl_context=trusting)
    stored = download(f"https://images.test:{port}/a.jpg", policy, store)
    assert stored.sha256 == hashlib.sha256(JPEG).hexdigest()
    assert resolved == ["images.test"]
    assert https_host.names["last"] == "images.test"
    assert https_host.seen[0][0] == f"images.test:{port}"
    untrusting = Policy([], trusted=[f"images.test:{port}"], resolver=resolver)
    with pytest.raises(PermanentError, match="TLS certificate refused"):
        download(f"https://images.test:{port}/a.jpg", untrusting, store)


# -- properties: the parser and the address rules against arbitrary input --------------

FORBIDDEN_V4 = ["0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
                "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/4", "240.0.0.0/4"]


@given(st.sampled_from(FORBIDDEN_V4), st.integers(min_value=0, max_value=2**32 - 1))
def test_every_address_of_a_forbidden_range_is_refused(network, offset):
    net = ipaddress.ip_network(network)
    ip = net.network_address + offset % net.num_addresses
    assert non_public(ip)
    assert non_public(ipaddress.ip_address(f"::ffff:{ip}"))  # and its IPv4-mapped form


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=60),
       st.sampled_from(["http://", "https://", "HTTPS://", "file://", "", "//", "https:\\\\"]))
def test_a_url_passes_only_with_an_allowlisted_host_and_port(rest, scheme):
    policy = Policy(["im.runware.ai", "http://127.0.0.1:5000"])
    try:
        target = policy.check(scheme + rest)
    except Refused:
        return
    assert (target.host, target.port) in {("im.runware.ai", 443), ("127.0.0.1", 5000)}
    assert target.scheme == "https" or target.port == 5000


def test_a_name_that_never_resolves_is_held_to_the_deadline(store):
    """getaddrinfo cannot be interrupted: a resolver that hangs (a dead DNS server) must
    not hold the fetch past its deadline; the download fails as transient (retried later)."""
    release = threading.Event()

    def hanging(host, port, type=0):
        release.wait(10)  # a lookup the test lets go of when it ends
        raise socket.gaierror("the test's DNS never answered")

    policy = Policy(["slow-dns.test"], resolver=hanging, connect_timeout=0.2)
    try:
        with pytest.raises(TransientError, match="took longer than 0.2s"):
            download("https://slow-dns.test/a.jpg", policy, store)
    finally:
        release.set()
    assert visible(store) == [] and os.listdir(store.tmp) == []


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_lookups_still_run_in_a_process_forked_after_some(store):
    """The lookup threads of the parent do not exist in a forked child (gunicorn forks):
    the child must get its own instead of waiting on dead ones until every lookup times
    out."""
    def instant(host, port, type=0):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    policy = Policy(["example.test"], resolver=instant, connect_timeout=2)
    target = policy.check("https://example.test/a.jpg")
    assert policy.resolve(target)  # the parent's pool now has a thread
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if the lookup works
        try:
            os._exit(0 if policy.resolve(target) else 1)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
