"""Benchmark: webhook ingest under gunicorn, against a bare Flask endpoint in the same run.

    .venv/bin/python bench/webhook_ingest.py [--duration 10] [--connections 16]

All three servers run with the same gunicorn settings (2 gevent workers, as the service
is deployed) on loopback: the bare endpoint, the same endpoint storing each body with one
durable insert (the floor for any receiver that stores what it acknowledges, see
bench/bare_app.py), and the service. wrk posts valid per-result deliveries (distinct
imageUUIDs over many tasks, about 10 % duplicates). Afterwards the catalogue must hold exactly one row per distinct imageUUID
that was acknowledged: nothing lost, nothing twice. Targets: ingest rate >= 0.6 x
bare, p99 <= 2 x bare p99.
"""

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archive.catalogue import Catalogue  # noqa: E402
from bench.common import POST_DELIVERIES_LUA, Gunicorn, machine, run_wrk  # noqa: E402
from receiver.provider.tokens import load_or_create_secret, make_token  # noqa: E402



def prepare(data_dir, tasks, per_task, dup_share, rng):
    """Tasks in a fresh catalogue and a request file: (path with token, body) lines."""
    catalogue = Catalogue(data_dir / "catalogue.db")
    catalogue.migrate()
    secret = load_or_create_secret(str(data_dir / "webhook-secret"))
    lines, uuids = [], []
    with catalogue.write() as conn:
        for _ in range(tasks):
            task_uuid = str(uuid.uuid4())
            catalogue.create_task({
                "task_uuid": task_uuid, "model": "runware:twinflow-z-image-turbo@0",
                "positive_prompt": "a copper aviary market canopy, warm light, crowds",
                "params": {"taskUUID": task_uuid}, "provider": "runware",
                "number_results": per_task, "status": "submitted",
            }, conn=conn)
            token = make_token(task_uuid, secret=secret)
            for _ in range(per_task):
                image = str(uuid.uuid4())
                body = json.dumps({"data": [{
                    "taskType": "imageInference", "taskUUID": task_uuid, "imageUUID": image,
                    "imageURL": f"https://im.runware.ai/image/os/a1/ws/2/ii/{image}.jpg",
                    "seed": rng.randrange(2**32), "cost": 0.0006}]})
                lines.append(f"/webhooks/runware/{task_uuid}?token={token}\t{body}")
                uuids.append(image)
    rng.shuffle(lines)
    for _ in range(int(len(lines) * dup_share)):
        lines.insert(rng.randrange(len(lines)), lines[rng.randrange(len(lines))])
    path = data_dir / "requests.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path, lines


def check_rows(data_dir, lines, sent_counts, threads):
    """Rows must be one per distinct imageUUID among the requests wrk got through."""
    per_thread = [lines[i::threads] for i in range(threads)]
    sent = set()
    for tid, count in sent_counts.items():
        for line in per_thread[tid][:count]:
            sent.add(json.loads(line.split("\t", 1)[1])["data"][0]["imageUUID"])
    conn = sqlite3.connect(data_dir / "catalogue.db")
    rows = [r[0] for r in conn.execute("SELECT image_uuid FROM results")]
    accepted = conn.execute(
        "SELECT count(*) FROM deliveries WHERE verdict = 'accepted'").fetchone()[0]
    duplicates = conn.execute(
        "SELECT count(*) FROM deliveries WHERE verdict = 'duplicate'").fetchone()[0]
    return {"rows": len(rows), "distinct_rows": len(set(rows)), "accepted": accepted,
            "duplicates_logged": duplicates, "sent_distinct_upper_bound": len(sent),
            "rows_not_sent": len(set(rows) - sent)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--tasks", type=int, default=25000)
    parser.add_argument("--synchronous", default="FULL")
    parser.add_argument("--worker-class", default="gevent")
    args = parser.parse_args()
    rng = random.Random(7)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        requests_file, lines = prepare(data_dir, args.tasks, 4, 0.1, rng)
        script = Path(tmp) / "post.lua"
        script.write_text(POST_DELIVERIES_LUA)
        wrk_env = {"BENCH_REQUESTS": str(requests_file), "BENCH_THREADS": str(args.threads)}
        run = dict(script=script, duration=args.duration, threads=args.threads,
                   connections=args.connections, env=wrk_env)

        bare = Gunicorn("bench.bare_app:create_app()", worker_class=args.worker_class)
        try:
            b_rate, b_p50, b_p99, b_bad, _ = run_wrk(bare.url, **run)
        finally:
            bare.stop()

        one = Gunicorn("bench.bare_app:create_insert_app()", worker_class=args.worker_class,
                       env={"RUNWARE_ARCHIVE_DIR": tmp})
        try:
            o_rate, o_p50, o_p99, o_bad, _ = run_wrk(one.url, **run)
        finally:
            one.stop()

        service = Gunicorn("receiver:create_app()", env={
            "RUNWARE_ARCHIVE_DIR": str(data_dir), "RUNWARE_API_KEY": "bench",
            "RUNWARE_ARCHIVE_SYNCHRONOUS": args.synchronous}, worker_class=args.worker_class)
        try:
            s_rate, s_p50, s_p99, s_bad, out = run_wrk(service.url, **run)
        finally:
            service.stop()
        sent = {int(t): int(c) for t, c in
                (l.split()[1].split("=")[1:] + l.split()[2].split("=")[1:]
                 for l in out.splitlines() if l.startswith("sent "))}
        rows = check_rows(data_dir, lines, sent, args.threads)

    print(f"machine: {machine()}")
    print(f"gunicorn 2 workers ({args.worker_class}); wrk -t{args.threads} "
          f"-c{args.connections} -d{args.duration}s; synchronous={args.synchronous}")
    print(f"bare Flask 200   : {b_rate:8.0f} req/s  p50 {b_p50:6.2f} ms  p99 {b_p99:6.2f} ms"
          f"  non-2xx {b_bad}")
    print(f"Flask + 1 insert : {o_rate:8.0f} req/s  p50 {o_p50:6.2f} ms  p99 {o_p99:6.2f} ms"
          f"  non-2xx {o_bad}   ({o_rate / b_rate:.2f} x bare)")
    print(f"webhook ingest   : {s_rate:8.0f} req/s  p50 {s_p50:6.2f} ms  p99 {s_p99:6.2f} ms"
          f"  non-2xx {s_bad}")
    rate_ratio, p99_ratio = s_rate / b_rate, s_p99 / b_p99
    print(f"ratio rate {rate_ratio:.2f} (target >= 0.60)   ratio p99 {p99_ratio:.2f} "
          f"(target <= 2.00)")
    print(f"rows: {rows}")
    exact = (rows["rows"] == rows["distinct_rows"] == rows["accepted"]
             and rows["rows_not_sent"] == 0 and s_bad == 0
             and rows["rows"] <= rows["sent_distinct_upper_bound"])
    print("rows check:", "ok" if exact else "MISMATCH")
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
