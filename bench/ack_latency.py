"""Benchmark: webhook acknowledgement latency with 10 KB images vs 10 MB images.

    .venv/bin/python bench/ack_latency.py [--duration 12] [--connections 4] [--delay-ms 10]

The service runs as in production: ``runware-archive serve --workers 2`` (2 gevent
workers, and the image fetcher as its own ``runware-archive worker`` process), on a fresh
data folder per run, with a local image server (bench/image_server.py, its own process)
allowlisted as ``http://127.0.0.1:<port>``. wrk posts valid deliveries (distinct
imageUUIDs over tasks created in the catalogue) whose ``imageURL`` points at that server:
~10 KB JPEGs in one run, ~10 MB JPEGs (2048 x 2048) in the other, the same connections and
the same pause between requests on each connection (wrk's ``delay()``), so both runs
offer about the same moderate rate and the server is not saturated. The fetcher downloads
all the while (its queue never empties), so a download that sat on the ack path, or
starved it, would show as a higher p99 in the 10 MB runs. Runs alternate 10 KB, 10 MB,
10 KB, 10 MB, since the machine is noisy. Target: p99(10 MB) / p99(10 KB) <= 1.1.

Each run checks that the catalogue holds exactly one row per acknowledged delivery (never
more than were sent), that no image was refused or failed, and that the image server saw
no path twice. It also says how busy the cores were: the web workers, the fetcher, wrk,
and whatever else ran on the machine meanwhile ("other"), which is what makes a run noisy.

Baselines for the same figures: ``--set RUNWARE_ARCHIVE_FETCHER=off`` (no fetcher: the
ack path alone), ``--renice-fetcher 10`` (the fetcher at a lower CPU priority).
"""

import argparse
import json
import os
import random
import re
import resource
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archive.catalogue import Catalogue  # noqa: E402
from bench.common import (  # noqa: E402
    BIN, POST_DELIVERIES_LUA, ROOT, free_port, machine, run_wrk)
from bench.image_server import ImageServerProcess  # noqa: E402
from receiver.provider.tokens import load_or_create_secret, make_token  # noqa: E402



def prepare(data_dir, image_base, count, name, rng):
    """Tasks (4 results each) in the catalogue and a request file of ``count`` deliveries,
    each with its own imageUUID and an imageURL under ``image_base``."""
    catalogue = Catalogue(data_dir / "catalogue.db")
    catalogue.migrate()
    secret = load_or_create_secret(str(data_dir / "webhook-secret"))
    lines = []
    with catalogue.write() as conn:
        for _ in range((count + 3) // 4):
            task_uuid = str(uuid.uuid4())
            catalogue.create_task({
                "task_uuid": task_uuid, "model": "runware:twinflow-z-image-turbo@0",
                "positive_prompt": "a copper aviary market canopy, warm light, crowds",
                "params": {"taskUUID": task_uuid}, "provider": "runware",
                "number_results": 4, "status": "submitted",
            }, conn=conn)
            token = make_token(task_uuid, secret=secret)
            for _ in range(4):
                image = str(uuid.uuid4())
                body = json.dumps({"data": [{
                    "taskType": "imageInference", "taskUUID": task_uuid, "imageUUID": image,
                    "imageURL": f"{image_base}/{image}.jpg",
                    "seed": rng.randrange(2**32), "cost": 0.0006}]})
                lines.append(f"/webhooks/runware/{task_uuid}?token={token}\t{body}")
    rng.shuffle(lines)
    path = data_dir.parent / f"{name}.tsv"
    path.write_text("\n".join(lines[:count]) + "\n")
    return path


class Service:
    """``runware-archive serve --workers 2`` on a free port, until ``stop()``."""

    def __init__(self, data_dir, image_host, workers, settings=()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "RUNWARE_ARCHIVE_DIR": str(data_dir), "RUNWARE_API_KEY": "bench",
               # never reach out: the reconcile pass would talk to this (closed) port
               "RUNWARE_API_URL": f"http://127.0.0.1:{free_port()}/v1",
               "RUNWARE_ARCHIVE_IMAGE_HOSTS": f"http://{image_host}",
               "RUNWARE_ARCHIVE_ACCESS_LOG": "", **dict(settings)}
        self.log = open(data_dir.parent / "serve.log", "wb")
        self.proc = subprocess.Popen(
            [str(BIN / "runware-archive"), "serve", "--port", str(self.port),
             "--workers", str(workers)],
            cwd=ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True)
        fetcher = env.get("RUNWARE_ARCHIVE_FETCHER", "thread").lower() != "off"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + "/healthz", timeout=1).ok and (
                        not fetcher or self._fetcher_up()):
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("runware-archive serve --workers did not start")

    def _fetcher_up(self):
        return bool(self.fetcher_pids())

    def fetcher_pids(self):
        return [int(p) for p in subprocess.run(
            ["pgrep", "-s", str(self.proc.pid), "-f", "receiver.cli worker"],
            capture_output=True, text=True).stdout.split()]

    def renice_fetcher(self, niceness):
        """An experiment: give every thread of the fetcher process a lower CPU priority
        (on Linux, nice is per thread)."""
        for pid in self.fetcher_pids():
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.setpriority(os.PRIO_PROCESS, int(tid), niceness)

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def cpu_seconds(session):
    """CPU seconds (user + system) used so far by the processes of a session, by role:
    ``fetcher`` (runware-archive worker), ``web`` (gunicorn master and workers)."""
    used = {"web": 0.0, "fetcher": 0.0}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read().replace(b"\0", b" ")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) != session:  # field 6 of stat: the session id
            continue
        role = "fetcher" if b"receiver.cli worker" in cmdline else "web"
        used[role] += (int(fields[11]) + int(fields[12])) / tick
    return used


def machine_busy():
    """CPU seconds all cores have spent busy (not idle, not waiting for I/O) since boot."""
    fields = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def wrk_cpu():
    """CPU seconds used by finished child processes (wrk) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def snapshot(service, image_server):
    return {**cpu_seconds(service.proc.pid), "images": image_server.cpu_seconds(),
            "wrk": wrk_cpu(), "machine": machine_busy(), "clock": time.monotonic()}


def archive_states(db):
    conn = sqlite3.connect(db, timeout=10)
    try:
        return dict(conn.execute(
            "SELECT archive_state, count(*) FROM results GROUP BY archive_state").fetchall())
    finally:
        conn.close()


def wrk_counts(out):
    """(requests completed, requests generated) from a wrk run with the Lua above."""
    completed = int(re.search(r"(\d+) requests in", out).group(1))
    sent = sum(int(m) for m in re.findall(r"^sent thread=\d+ count=(\d+)", out, re.M))
    return completed, sent


def one_run(profile, args, image_server, rng, tmp):
    """One fresh service, a warm-up, the measured wrk run; returns a dict of figures."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"ack-{profile}-", dir=tmp))
    data_dir = run_dir / "data"
    data_dir.mkdir()
    base = f"{image_server.url}/{profile}"
    # Generously more deliveries than the run can send, so none is sent twice.
    ceiling = int(args.connections * 1000 / max(args.delay_ms, 1) * 1.5) + 200
    warm = prepare(data_dir, base, ceiling * args.warmup, "warm", rng)
    measured = prepare(data_dir, base, ceiling * args.duration, "measured", rng)
    script = run_dir / "post.lua"
    script.write_text(POST_DELIVERIES_LUA)
    gets_before = image_server.gets()
    service = Service(data_dir, image_server.netloc, args.workers,
                      [item.split("=", 1) for item in args.set])
    if args.renice_fetcher:
        service.renice_fetcher(args.renice_fetcher)
    try:
        common = dict(script=script, threads=2, connections=args.connections)
        env = {"BENCH_THREADS": "2", "BENCH_DELAY_MS": str(args.delay_ms)}
        _, _, _, warm_bad, warm_out = run_wrk(
            service.url, duration=args.warmup, **common,
            env={**env, "BENCH_REQUESTS": str(warm)})
        before = archive_states(data_dir / "catalogue.db")
        cpu_before = snapshot(service, image_server)
        rate, p50, p99, bad, out = run_wrk(
            service.url, duration=args.duration, **common,
            env={**env, "BENCH_REQUESTS": str(measured)})
        after = archive_states(data_dir / "catalogue.db")
        cpu_after = snapshot(service, image_server)
    finally:
        service.stop()
    gets_after = image_server.gets()
    states = archive_states(data_dir / "catalogue.db")
    rows = sum(states.values())
    done_warm, sent_warm = wrk_counts(warm_out)
    done_meas, sent_meas = wrk_counts(out)
    exact = (bad == warm_bad == 0 and done_warm + done_meas <= rows <= sent_warm + sent_meas
             and not states.get("failed") and not states.get("refused")
             and not gets_after["repeated"])
    archived = after.get("archived", 0) - before.get("archived", 0)
    seconds = cpu_after.pop("clock") - cpu_before.pop("clock")
    figures = {"profile": profile, "rate": rate, "p50": p50, "p99": p99, "non2xx": bad + warm_bad,
               "archived": archived, "archived_per_s": archived / seconds,
               "pending_at_end": after.get("pending", 0), "rows": rows,
               "acked": done_warm + done_meas, "sent": sent_warm + sent_meas,
               "states": states, "image_gets": gets_after["gets"] - gets_before["gets"],
               "exact": exact,
               "cpu": {k: (cpu_after[k] - cpu_before[k]) / seconds for k in cpu_after}}
    cpu = figures["cpu"]
    # Cores busy with work that is not this benchmark's: other people's jobs on the machine.
    cpu["others"] = max(0.0, cpu.pop("machine") - sum(cpu.values()))
    subprocess.run(["rm", "-rf", str(run_dir)], check=False)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=12, help="seconds measured per run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--delay-ms", type=int, default=10,
                        help="pause after each response, per connection (wrk delay())")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2, help="10 KB/10 MB pairs")
    parser.add_argument("--profiles", default="10k,10m",
                        help="the image sizes of each round, in order")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the service, e.g. RUNWARE_ARCHIVE_FETCHER=off")
    parser.add_argument("--renice-fetcher", type=int, default=0, metavar="N",
                        help="an experiment: run the fetcher process at nice N")
    args = parser.parse_args()
    rng = random.Random(11)
    load = os.getloadavg()
    image_server = ImageServerProcess(["10k", "10m"])
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.rounds):
                for profile in args.profiles.split(","):
                    results.append(one_run(profile, args, image_server, rng, tmp))
                    r = results[-1]
                    print(f"  {profile:>4}: {r['rate']:6.0f} req/s  p50 {r['p50']:6.2f} ms  "
                          f"p99 {r['p99']:6.2f} ms  archived {r['archived']:4d} "
                          f"({r['archived_per_s']:.1f}/s)  rows {'ok' if r['exact'] else 'BAD'}"
                          "  cpu/s " + " ".join(f"{k} {v:.2f}" for k, v in r["cpu"].items()),
                          flush=True)
    finally:
        sizes = image_server.sizes
        image_server.stop()

    print(f"machine: {machine()}")
    print(f"load average at start: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"runware-archive serve --workers {args.workers} (gevent) + its fetcher process "
          f"(RUNWARE_ARCHIVE_FETCH_CONCURRENCY default); wrk -t2 -c{args.connections} "
          f"-d{args.duration}s, delay {args.delay_ms} ms per connection, after "
          f"{args.warmup}s warm-up; images {sizes['10k']:,} B and {sizes['10m']:,} B")
    print("cores busy during each run: web = gunicorn, fetcher = its process, others = "
          "work on this machine that is not the benchmark's")
    print(f"{'run':>4} {'image':>6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'archived':>9} {'img/s':>6} {'queue':>6} {'rows':>6} {'acked':>6} {'check':>6} "
          f"{'web':>5} {'fetch':>5} {'wrk':>5} {'other':>5}")
    for i, r in enumerate(results, 1):
        c = r["cpu"]
        print(f"{i:>4} {r['profile']:>6} {r['rate']:7.0f} {r['p50']:7.2f} {r['p99']:7.2f} "
              f"{r['archived']:9d} {r['archived_per_s']:6.1f} {r['pending_at_end']:6d} "
              f"{r['rows']:6d} {r['acked']:6d} {'ok' if r['exact'] else 'BAD':>6} "
              f"{c['web']:5.2f} {c['fetcher']:5.2f} {c['wrk']:5.2f} {c['others']:5.2f}")
    small = [r for r in results if r["profile"] == "10k"]
    large = [r for r in results if r["profile"] == "10m"]
    for i, (a, b) in enumerate(zip(small, large), 1):
        print(f"round {i}: p99(10 MB) / p99(10 KB) = {b['p99']:.2f} / {a['p99']:.2f} = "
              f"{b['p99'] / a['p99']:.2f}   (target <= 1.10)")
    if not small or not large:
        return 0 if all(r["exact"] for r in results) else 1
    worst_small = max(r["p99"] for r in small)
    worst_large = max(r["p99"] for r in large)
    print(f"worst p99 of each size: {worst_large:.2f} / {worst_small:.2f} = "
          f"{worst_large / worst_small:.2f}")
    fetching = "RUNWARE_ARCHIVE_FETCHER=off" not in args.set
    ok = all(r["exact"] and (r["archived"] > 0 or not fetching) for r in results)
    print("rows check:", "ok" if ok else "MISMATCH", [r["states"] for r in results])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
