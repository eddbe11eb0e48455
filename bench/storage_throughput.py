"""Benchmark: images archived per second by the fetcher into the data folder and into an
S3 bucket, alternating in one run.

    .venv/bin/python bench/storage_throughput.py [--images 200] [--rounds 2]
                                                 [--concurrency 4] [--latency-ms 50]

Each run is bench/fetcher.py's: a fresh catalogue holding ``--images`` pending results whose
``imageURL`` points at a local image server (its own process) serving ~200 KB JPEGs of
1024 x 1024, and the production fetcher (``receiver.worker.make_fetcher``) running until
every one is archived: claim, SSRF-checked download, sha256, Pillow verify and decode,
publish, catalogue update, WEBP thumbnail. The only difference between the two columns is
``RUNWARE_ARCHIVE_STORAGE``: ``file`` (fsync + rename in the data folder), or
``s3://bucket/bench`` on an S3-protocol server on loopback (moto's server mode, its own
process: one PutObject with its sha256 checksum per original, a HEAD before it, a GET of
the original and a PutObject for the thumbnail). Runs alternate (file, bucket, file, …) so
a machine busy with something else hits both alike. moto is Python and on loopback: a real
store adds its network round trips, and is faster per request than moto.

Every run checks each image was fetched once and archived once: one GET per path, one
archived row per image, and in the store one original and one thumbnail per image.
"""

import argparse
import os
import shutil
import socket
import statistics
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import boto3  # noqa: E402

from bench.common import machine  # noqa: E402
from bench.fetcher import fill  # noqa: E402
from bench.image_server import ImageServerProcess  # noqa: E402
from receiver import create_app  # noqa: E402
from receiver.worker import make_fetcher  # noqa: E402

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
               "AWS_DEFAULT_REGION": "us-east-1"}
MOTO = ("import sys, time\nfrom moto.server import ThreadedMotoServer\n"
        "ThreadedMotoServer(ip_address='127.0.0.1', port=int(sys.argv[1]), verbose=False)"
        ".start()\nprint('up', flush=True)\ntime.sleep(86400)\n")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """moto's S3 server in its own process, on a free loopback port."""

    def __init__(self):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-c", MOTO, str(port)],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env={**os.environ, **CREDENTIALS})
        assert self.proc.stdout.readline().strip() == b"up"
        self.client = boto3.client("s3", endpoint_url=self.url, region_name="us-east-1")

    def new_bucket(self):
        name = f"bench-{uuid.uuid4().hex[:16]}"
        self.client.create_bucket(Bucket=name)
        return name

    def count(self, bucket, prefix):
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                      Prefix=prefix)
        return sum(len(page.get("Contents", ())) for page in pages)

    def cpu_seconds(self):
        """CPU time the S3 server has used (Linux /proc)."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def one_run(kind, images, s3, count, concurrency, tmp):
    """Archive ``count`` images into ``kind`` (file or s3); returns (images/s, exact,
    the S3 server's CPU ms per image)."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"store-{kind}-", dir=tmp))
    config = {"RUNWARE_ARCHIVE_DIR": str(data_dir), "RUNWARE_API_KEY": "bench",
              "RUNWARE_API_URL": "http://127.0.0.1:9/v1",
              "RUNWARE_ARCHIVE_IMAGE_HOSTS": f"http://{images.netloc}",
              "RUNWARE_ARCHIVE_FETCH_CONCURRENCY": concurrency, "RUNWARE_ARCHIVE_FETCHER": "off"}
    bucket = None
    if kind == "s3":
        bucket = s3.new_bucket()
        config.update(RUNWARE_ARCHIVE_STORAGE=f"s3://{bucket}/bench",
                      RUNWARE_ARCHIVE_S3_ENDPOINT=s3.url)
    app = create_app(config)
    catalogue = app.extensions["catalogue"]
    fill(catalogue, f"{images.url}/200k", count)
    fetcher = make_fetcher(app, reconcile=False)
    gets_before = images.gets()["gets"]
    watch = sqlite3.connect(data_dir / "catalogue.db", timeout=10)
    stop = threading.Event()
    runner = threading.Thread(target=fetcher.run, args=(stop,), name="bench-fetcher")
    s3_cpu = s3.cpu_seconds()
    started = time.perf_counter()
    runner.start()
    while watch.execute("SELECT count(*) FROM results WHERE archive_state = 'pending'"
                        ).fetchone()[0]:
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    s3_cpu = s3.cpu_seconds() - s3_cpu
    stop.set()
    runner.join()
    states = dict(watch.execute(
        "SELECT archive_state, count(*) FROM results GROUP BY archive_state").fetchall())
    distinct = watch.execute("SELECT count(DISTINCT sha256) FROM results").fetchone()[0]
    watch.close()
    stored = stored_counts(app, s3, bucket)
    exact = (states == {"archived": count} and distinct == count
             and images.gets()["gets"] - gets_before == count and stored == (count, count))
    catalogue.close()
    shutil.rmtree(data_dir)
    return count / elapsed, exact, 1000 * s3_cpu / count


def stored_counts(app, s3, bucket):
    """``(originals, thumbnails)`` in the run's store."""
    if bucket is None:
        store = app.extensions["image_store"]
        return (len(list(store.hashes())), len(store.listing("thumbs/")))
    return s3.count(bucket, "bench/images/"), s3.count(bucket, "bench/thumbs/")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200, help="images per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each store")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--latency-ms", type=float, default=50.0,
                        help="the image server's time to first byte")
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    load = os.getloadavg()
    rates, ok, server_ms = {"file": [], "s3": []}, True, []
    images, s3 = ImageServerProcess(["200k"], latency_ms=args.latency_ms), S3Server()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for round_ in range(args.rounds):
                for kind in ("file", "s3"):
                    rate, exact, ms = one_run(kind, images, s3, args.images, args.concurrency,
                                              tmp)
                    rates[kind].append(rate)
                    if kind == "s3":
                        server_ms.append(ms)
                    ok = ok and exact
                    print(f"  round {round_ + 1} {kind:>4}: {rate:6.1f} images/s"
                          f"{'' if exact else '  MISMATCH'}", flush=True)
    finally:
        images.stop()
        s3.stop()
    print(f"machine: {machine()}")
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{args.images} images of {images.sizes['200k']:,} B per run, {args.concurrency} "
          f"fetches, image server latency {args.latency_ms:g} ms, {args.rounds} runs each")
    best = {kind: max(values) for kind, values in rates.items()}
    median = {kind: statistics.median(values) for kind, values in rates.items()}
    print(f"{'store':>8} {'best images/s':>14} {'median':>8}")
    for kind in ("file", "s3"):
        print(f"{kind:>8} {best[kind]:14.1f} {median[kind]:8.1f}")
    print(f"bucket / folder: {best['s3'] / best['file']:.2f}x (best), "
          f"{median['s3'] / median['file']:.2f}x (median)")
    print(f"the S3 server's own CPU: {statistics.median(server_ms):.0f} ms per image (moto, "
          "Python, on the same two cores as the fetcher)")
    print("exactly once:", "ok (one GET, one archived row, one original and thumbnail per "
          "image, in each store)" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
