"""A local image host for the benchmarks: a threaded HTTP server on 127.0.0.1, in its own
process (so it never shares a GIL with what is measured).

    .venv/bin/python -m bench.image_server --profiles 10k,10m [--latency-ms 50]

``GET /<profile>/<anything>`` answers a valid JPEG of that profile after ``latency-ms``
(time to first byte, like a CDN). Every path gets different bytes (the path is written into
a JPEG comment segment), so the content-addressed store keeps one file per image, as it
would for real generations. ``GET /_gets`` answers how many image GETs there were and which
paths were asked for more than once. The first line on stdout is ``port <N>``.

Profiles (deterministic pixels):

* ``10k``  256 x 256 "photo" (gradient + soft noise), ~10 KB;
* ``200k`` 1024 x 1024 "photo", ~200 KB, about what a 1 MP generation weighs;
* ``10m``  2048 x 2048 noise at quality 95, 4:4:4, ~10 MB (Runware's largest side).
"""

import argparse
import collections
import io
import json
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]


def photo(side, *, quality, seed=1):
    """A smooth picture with soft grain, as JPEG bytes (compresses like a photo)."""
    rng = random.Random(seed)
    base = Image.linear_gradient("L").resize((side, side)).convert("RGB")
    grain = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    buf = io.BytesIO()
    Image.blend(base, grain.filter(ImageFilter.GaussianBlur(1)), 0.3).save(
        buf, "JPEG", quality=quality)
    return buf.getvalue()


def noise(side, *, quality, seed=1):
    """Pure colour noise as JPEG bytes: the most bytes per pixel JPEG gives."""
    rng = random.Random(seed)
    buf = io.BytesIO()
    Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3)).save(
        buf, "JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


PROFILES = {
    "10k": lambda: photo(256, quality=83),
    "200k": lambda: photo(1024, quality=90),
    "10m": lambda: noise(2048, quality=95),
}


def with_comment(jpeg, text):
    """``jpeg`` split as (head, tail) around a COM segment holding ``text``: the same
    picture, different bytes."""
    assert jpeg[:2] == b"\xff\xd8"
    payload = text.encode()[:60000]
    return b"\xff\xd8\xff\xfe" + struct.pack(">H", len(payload) + 2) + payload, jpeg[2:]


def make_server(images, latency):
    """A ThreadingHTTPServer on a free loopback port serving ``images`` (profile -> bytes)."""
    gets = collections.Counter()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            if self.path == "/_gets":
                with lock:
                    body = json.dumps({"gets": sum(gets.values()), "paths": len(gets),
                                       "repeated": [p for p, n in gets.items() if n > 1]})
                return self._send(200, "application/json", [body.encode()])
            profile = self.path.split("/")[1] if self.path.count("/") >= 2 else None
            if profile not in images:
                return self._send(404, "text/plain", [b"no such image\n"])
            with lock:
                gets[self.path] += 1
            if latency:
                time.sleep(latency)
            self._send(200, "image/jpeg", with_comment(images[profile], self.path))

        def _send(self, status, content_type, parts):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(sum(len(p) for p in parts)))
            self.end_headers()
            for part in parts:
                self.wfile.write(part)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    return server


class ImageServerProcess:
    """This module's server as a child process, until ``stop()``."""

    def __init__(self, profiles, *, latency_ms=0.0):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.image_server", "--profiles", ",".join(profiles),
             "--latency-ms", str(latency_ms)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True)
        first = self.proc.stdout.readline().split()
        if not first or first[0] != "port":
            self.stop()
            raise RuntimeError("the image server did not start")
        self.port = int(first[1])
        self.netloc = f"127.0.0.1:{self.port}"
        self.url = f"http://{self.netloc}"
        self.sizes = {k: int(v) for k, v in (item.split("=") for item in first[2:])}

    def gets(self):
        """``{"gets": image GETs, "paths": distinct paths, "repeated": [paths]}``."""
        return requests.get(self.url + "/_gets", timeout=10).json()

    def cpu_seconds(self):
        """CPU seconds (user + system) the server has used so far."""
        stat = open(f"/proc/{self.proc.pid}/stat").read()
        fields = stat[stat.rindex(")") + 2:].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profiles", default="10k,200k,10m")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    images = {name: PROFILES[name]() for name in args.profiles.split(",")}
    server = make_server(images, args.latency_ms / 1000)
    sizes = " ".join(f"{name}={len(data)}" for name, data in images.items())
    print(f"port {server.server_port} {sizes}", flush=True)
    try:
        server.serve_forever(0.1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
