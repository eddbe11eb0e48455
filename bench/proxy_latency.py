"""What the archive adds to a sync request: the same ``imageInference`` sent straight to the
sandbox (``/sandbox/v1``, sync: the images come back in the reply) and through the
archive's Runware-compatible ``/v1`` (which sends it on async with its own webhook, stores
each result as its webhook lands, and answers once they are stored), alternating, in the
same run, on loopback.

    .venv/bin/python -m bench.proxy_latency [--requests 40] [--images 1]

The archive's side includes what it is for: a task row, a budget check, one webhook per
image over HTTP, the ingest's group commit with its fsync, and reading the results back.
The sandbox renders the same pictures on both sides (a random seed each time).
"""

import argparse
import statistics
import tempfile
import time
import uuid

import requests

from archive import keys
from protocol.schemas import MODEL_ID
from receiver import config as settings
from receiver import create_app
from sandbox.guard import sandbox_key
from tests.conftest import LiveServer


def task(images):
    return {"taskType": "imageInference", "taskUUID": str(uuid.uuid4()), "model": MODEL_ID,
            "positivePrompt": "a glasshouse tea train platform at dawn", "width": 512,
            "height": 384, "numberResults": images, "deliveryMethod": "sync",
            "includeCost": True}


def timed(session, url, key, images):
    """Seconds for one sync request answered with all its images."""
    start = time.perf_counter()
    reply = session.post(url, json=[task(images)], timeout=60,
                         headers={"Authorization": f"Bearer {key}"})
    elapsed = time.perf_counter() - start
    items = reply.json().get("data", [])
    assert reply.status_code == 200 and len(items) == images, reply.text[:300]
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--images", type=int, default=1)
    args = parser.parse_args()
    folder = tempfile.mkdtemp()
    app = create_app({"RUNWARE_ARCHIVE_DIR": folder, "RUNWARE_SANDBOX_RESULT_DELAY": 0.0})
    server = LiveServer(app).start()
    client_key = keys.create(app.extensions["catalogue"], "bench")[1]
    sides = {"straight to the sandbox": (server.url + settings.SANDBOX_PATH,
                                         sandbox_key(app.config)),
             "through the archive's /v1": (server.url + "/v1", client_key)}
    times = {name: [] for name in sides}
    try:
        with requests.Session() as session:
            for name, (url, key) in sides.items():  # warm both up
                timed(session, url, key, args.images)
            for _ in range(args.requests):
                for name, (url, key) in sides.items():
                    times[name].append(timed(session, url, key, args.images))
    finally:
        server.stop()
    report(times, args)


def report(times, args):
    print(f"{args.requests} sync requests of {args.images} image(s) each, alternating")
    p50 = {}
    for name, values in times.items():
        values.sort()
        p50[name] = statistics.median(values)
        p95 = values[int(0.95 * (len(values) - 1))]
        print(f"{name:28s} p50 {p50[name] * 1000:7.1f} ms   p95 {p95 * 1000:7.1f} ms")
    direct, proxied = p50.values()
    print(f"the archive adds {(proxied - direct) * 1000:.1f} ms at the median "
          f"({proxied / direct:.2f} x)")


if __name__ == "__main__":
    main()
