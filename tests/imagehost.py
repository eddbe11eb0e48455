"""Test helpers for the image archive: pictures made with Pillow, an HTTP image host on
loopback that counts every GET, and a bare listening socket that records connections."""

import collections
import io
import socket
import struct
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


def picture(fmt="JPEG", size=(96, 64), colour=(200, 80, 40), **options):
    """Encoded image bytes of one flat colour with a stripe (so formats differ)."""
    im = Image.new("RGB", size, colour)
    im.paste((colour[2], colour[0], colour[1]), (0, 0, size[0] // 3, size[1]))
    buf = io.BytesIO()
    im.save(buf, fmt, **options)
    return buf.getvalue()


def png_bomb(width=30000, height=30000):
    """A small PNG whose header claims ``width`` x ``height`` 1-bit pixels, all zero."""
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(200)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data)
            + chunk(b"IEND", b""))


class ImageHost:
    """``ThreadingHTTPServer`` on 127.0.0.1 serving ``routes``: path -> bytes, or path ->
    ``callable(handler)`` that writes the whole answer itself. Counts GETs per path."""

    def __init__(self, routes=None):
        self.routes = dict(routes or {})
        self.gets = collections.Counter()
        self.lock = threading.Lock()
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                with host.lock:
                    host.gets[self.path] += 1
                route = host.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                elif callable(route):
                    route(self)
                else:
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.send_header("Content-Length", str(len(route)))
                    self.end_headers()
                    self.wfile.write(route)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_port
        self.netloc = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.netloc}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.005,),
                                       daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def redirect(location, status=302):
    """A route answering with a redirect to ``location``."""
    def route(handler):
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return route


def status(code):
    """A route answering ``code`` with an empty body."""
    def route(handler):
        handler.send_response(code)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return route


def headers_then(body_writer, *, length=None, content_type="image/jpeg"):
    """A route that sends a 200 head (optionally a Content-Length) and then lets
    ``body_writer(wfile)`` write; the connection closes after."""
    def route(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", content_type)
        if length is not None:
            handler.send_header("Content-Length", str(length))
        handler.send_header("Connection", "close")
        handler.end_headers()
        handler.close_connection = True
        try:
            body_writer(handler.wfile)
        except OSError:  # the client gave up: what these routes are for
            pass
    return route


def dribble(data, every=1.0):
    """A body writer sending one byte every ``every`` seconds."""
    def write(wfile):
        for byte in data:
            wfile.write(bytes([byte]))
            wfile.flush()
            time.sleep(every)
    return write


def endless(wfile):
    """A body writer that never stops."""
    block = b"\xff" * 65536
    while True:
        wfile.write(block)


class ConnectionRecorder:
    """A listening TCP socket on ``host`` that accepts and counts every connection."""

    def __init__(self, host="127.0.0.1", port=0):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def stop(self):
        self.stopped = True
        self.sock.close()


def add_task(catalogue, urls, *, ttl=None):
    """A task with one URL result per entry of ``urls``; returns the imageUUIDs."""
    task_uuid = str(uuid.uuid4())
    catalogue.create_task({"task_uuid": task_uuid, "model": "m", "positive_prompt": "p",
                           "params": {}, "provider": "sandbox", "number_results": len(urls),
                           "ttl": ttl})
    items = [{"imageUUID": str(uuid.uuid4()), "imageURL": url, "seed": i}
             for i, url in enumerate(urls)]
    catalogue.ingest(task_uuid, results=items)
    return [item["imageUUID"] for item in items]
