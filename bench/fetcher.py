"""Benchmark: images archived per second by the fetcher, 1 vs N concurrent fetches.

    .venv/bin/python bench/fetcher.py [--images 200] [--concurrency 1,2,4,8]
                                      [--latency-ms 50,0]

A fresh catalogue per run holds ``--images`` pending results whose ``imageURL`` points at
a local image server (bench/image_server.py, its own process, allowlisted as
``http://127.0.0.1:<port>``) serving ~200 KB JPEGs of 1024 x 1024, each path with its own
bytes. The fetcher is the production one, built by ``receiver.worker.make_fetcher``
from the app's settings (``RUNWARE_ARCHIVE_FETCH_CONCURRENCY`` = 1, 2, 4, 8), and runs
until every result is archived: claim, SSRF-checked download, sha256, Pillow verify and
full decode, durable move into the store, catalogue update, WEBP thumbnail.

With 50 ms before the first byte (a CDN's latency) the fetch is mostly waiting, and
concurrency should pay nearly linearly until the CPU is busy; with 0 ms the work is CPU
(hashing, decoding, the thumbnail) and fsyncs, and it stops scaling at the core count.
"cores busy" is the fetcher and the image server together; "other" is whatever else ran
on the machine meanwhile (a run with much of it was disturbed).
Every run checks each image was fetched exactly once and archived once: one GET per path,
one archived row and one stored original and thumbnail per image, no failures.
"""

import argparse
import os
import resource
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.ack_latency import machine_busy  # noqa: E402
from bench.common import machine  # noqa: E402
from bench.image_server import ImageServerProcess  # noqa: E402
from receiver import create_app  # noqa: E402
from receiver.worker import make_fetcher  # noqa: E402

PER_TASK = 4


def fill(catalogue, base, count):
    """``count`` pending URL results (tasks of 4), each image its own path."""
    for start in range(0, count, PER_TASK):
        task_uuid = str(uuid.uuid4())
        n = min(PER_TASK, count - start)
        catalogue.create_task({
            "task_uuid": task_uuid, "model": "runware:twinflow-z-image-turbo@0",
            "positive_prompt": "harbour cranes at dusk, long exposure", "params": {},
            "provider": "runware", "number_results": n, "status": "submitted"})
        catalogue.ingest(task_uuid, results=[
            {"imageUUID": (image := str(uuid.uuid4())), "imageURL": f"{base}/{image}.jpg",
             "seed": start + i, "cost": 0.0006} for i in range(n)])


def cpu_now():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_run(server, concurrency, count, tmp):
    """Archive ``count`` images with ``concurrency`` fetches; returns a dict of figures."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"fetch-{concurrency}-", dir=tmp))
    app = create_app({
        "RUNWARE_ARCHIVE_DIR": str(data_dir), "RUNWARE_API_KEY": "bench",
        "RUNWARE_API_URL": "http://127.0.0.1:9/v1",
        "RUNWARE_ARCHIVE_IMAGE_HOSTS": f"http://{server.netloc}",
        "RUNWARE_ARCHIVE_FETCH_CONCURRENCY": concurrency, "RUNWARE_ARCHIVE_FETCHER": "off"})
    catalogue = app.extensions["catalogue"]
    fill(catalogue, f"{server.url}/200k", count)
    fetcher = make_fetcher(app, reconcile=False)
    gets_before = server.gets()
    watch = sqlite3.connect(data_dir / "catalogue.db", timeout=10)
    stop = threading.Event()
    runner = threading.Thread(target=fetcher.run, args=(stop,), name="bench-fetcher")
    cpu0, server_cpu0, busy0 = cpu_now(), server.cpu_seconds(), machine_busy()
    started = time.perf_counter()
    runner.start()
    while watch.execute("SELECT count(*) FROM results WHERE archive_state = 'pending'"
                        ).fetchone()[0]:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    cpu, server_cpu = cpu_now() - cpu0, server.cpu_seconds() - server_cpu0
    others = max(0.0, machine_busy() - busy0 - cpu - server_cpu)
    stop.set()
    runner.join()
    gets = server.gets()
    states = dict(watch.execute(
        "SELECT archive_state, count(*) FROM results GROUP BY archive_state").fetchall())
    rows = watch.execute("SELECT sha256, file_ext, file_size, archive_attempts FROM results"
                         ).fetchall()
    watch.close()
    store = app.extensions["image_store"]
    files_ok = all(os.path.getsize(store.path(sha, ext)) == size
                   and os.path.exists(store.thumb_path(sha)) for sha, ext, size, _ in rows)
    exact = (states == {"archived": count} and len({r[0] for r in rows}) == count
             and all(r[3] == 1 for r in rows) and files_ok
             and gets["gets"] - gets_before["gets"] == count and not gets["repeated"])
    catalogue.close()
    shutil.rmtree(data_dir)
    return {"concurrency": concurrency, "elapsed": elapsed, "rate": count / elapsed,
            "cpu_ms": 1000 * cpu / count, "server_cpu_ms": 1000 * server_cpu / count,
            "cpu_busy": (cpu + server_cpu) / elapsed, "others": others / elapsed,
            "exact": exact, "states": states}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200, help="images per run")
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--latency-ms", default="50,0",
                        help="image server latencies (time to first byte), one table each")
    args = parser.parse_args()
    load = os.getloadavg()
    levels = [int(c) for c in args.concurrency.split(",")]
    tables, sizes = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for latency in (float(x) for x in args.latency_ms.split(",")):
            server = ImageServerProcess(["200k"], latency_ms=latency)
            sizes = server.sizes
            try:
                runs = []
                for concurrency in levels:
                    runs.append(one_run(server, concurrency, args.images, tmp))
                    r = runs[-1]
                    print(f"  latency {latency:g} ms, concurrency {concurrency}: "
                          f"{r['rate']:6.1f} images/s  ({r['elapsed']:.2f} s)", flush=True)
                tables.append((latency, runs))
            finally:
                server.stop()

    print(f"machine: {machine()}")
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{args.images} images of {sizes['200k']:,} B (1024 x 1024 JPEG) per run, "
          "fresh catalogue each run, synchronous=FULL")
    ok = True
    for latency, runs in tables:
        base = runs[0]["rate"]
        print(f"\nimage server latency {latency:g} ms")
        print(f"{'fetches':>8} {'images/s':>9} {'speedup':>8} {'fetcher cpu ms/img':>19} "
              f"{'server cpu ms/img':>18} {'cores busy':>11} {'other':>6} {'check':>6}")
        for r in runs:
            print(f"{r['concurrency']:>8} {r['rate']:9.1f} {r['rate'] / base:7.2f}x "
                  f"{r['cpu_ms']:19.1f} {r['server_cpu_ms']:18.1f} {r['cpu_busy']:11.2f} "
                  f"{r['others']:6.2f} {'ok' if r['exact'] else 'BAD':>6}")
            ok = ok and r["exact"]
    print("\nexactly once:", "ok (one GET, one archived row, one original and thumbnail "
          "per image)" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
