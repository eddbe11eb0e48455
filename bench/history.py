"""How fast the gallery's queries are on a large catalogue, "a million results".

    .venv/bin/python -m bench.history [--results 1000000] [--db /tmp/history-bench.db]

Builds (once, then reuses) a catalogue of synthetic tasks and results through the real
migrations, then times each gallery query shape (first page, a deep page, every filter,
common and rare search terms, the summary counts), best of five.

It prints its own figures; the current ones, with the machine and the command, are in the
README's Performance section (the summary counts now come from tables kept by triggers,
so figures measured before migration m010 no longer hold).
"""

import argparse
import json
import os
import random
import sqlite3
import time
import uuid
from datetime import datetime, timedelta, timezone

from archive import browse
from archive.catalogue import Catalogue

WORDS = ("lighthouse harbor lantern bazaar glasshouse train platform library atrium copper "
         "aviary market canopy dawn dusk fog rain neon garden tower bridge river canyon "
         "desert forest meadow castle ruins temple street alley rooftop skyline portrait "
         "still life macro aerial misty golden hour cinematic watercolor ink").split()
SIZES = ((1024, 1024), (1024, 768), (1024, 576), (768, 1024), (512, 512))
STATUS_WEIGHTS = (("complete", 95), ("error", 3), ("submitted", 2))


def _stamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _task(rng, index, start):
    made = start + timedelta(seconds=index * 60)
    words = rng.sample(WORDS, rng.randint(6, 14))
    if rng.random() < 0.0005:
        words.append("zanzibar")  # a rare word: about one task in two thousand
    prompt = " ".join(words)
    width, height = rng.choice(SIZES)
    model = "runware:other@1" if index < 300 else "runware:twinflow-z-image-turbo@0"
    status = rng.choices([s for s, _ in STATUS_WEIGHTS], [w for _, w in STATUS_WEIGHTS])[0]
    count = rng.choice((1, 1, 2, 3, 4, 4)) if status == "complete" else 0
    task_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    params = {"taskType": "imageInference", "taskUUID": task_uuid, "model": model,
              "positivePrompt": prompt, "width": width, "height": height, "steps": 4,
              "numberResults": max(count, 1), "includeCost": True,
              "webhookURL": f"https://archive.example/webhooks/runware/{task_uuid}"}
    row = {"task_uuid": task_uuid, "created_at": _stamp(made), "updated_at": _stamp(made),
           "model": model, "positive_prompt": prompt, "width": width, "height": height,
           "steps": 4, "number_results": max(count, 1), "params": json.dumps(params),
           "provider": "sandbox" if rng.random() < 0.1 else "runware", "status": status,
           "results_received": count, "cost": 0.0006 * count if count else None}
    results = [{"image_uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "task_uuid": task_uuid, "received_at": _stamp(made + timedelta(seconds=5)),
                "seed": rng.randrange(2**32), "cost": 0.0006, "output_kind": "URL",
                "archive_state": "archived", "sha256": f"{rng.getrandbits(256):064x}",
                "file_ext": "jpg", "starred": int(rng.random() < 0.002),
                "raw": "{}"} for _ in range(count)]
    return row, results


def build(path, target):
    """Fill a new catalogue at ``path`` with about ``target`` results."""
    catalogue = Catalogue(path, synchronous="OFF")
    catalogue.migrate()
    rng = random.Random(5)
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    conn, made, index = catalogue.conn, 0, 0
    while made < target:
        conn.execute("BEGIN")
        for _ in range(10000):
            row, results = _task(rng, index, start)
            index += 1
            made += insert(conn, row, results)
        conn.execute("COMMIT")
    conn.execute("ANALYZE")
    return catalogue


def insert(conn, row, results):
    """One task row and its result rows, as built by :func:`_task`; how many results."""
    conn.execute(f"INSERT INTO tasks ({', '.join(row)}) VALUES"
                 f" ({', '.join('?' for _ in row)})", list(row.values()))
    for result in results:
        conn.execute(f"INSERT INTO results ({', '.join(result)}) VALUES"
                     f" ({', '.join('?' for _ in result)})", list(result.values()))
    return len(results)


def timed(label, func, repeat=5):
    """Best of ``repeat`` runs, in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        value = func()
        best = min(best, time.perf_counter() - began)
    print(f"{best * 1000:9.2f} ms  {label}")
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=1_000_000)
    parser.add_argument("--db", default="/tmp/history-bench.db")
    opts = parser.parse_args()
    if not os.path.exists(opts.db):
        began = time.perf_counter()
        build(opts.db, opts.results)
        print(f"built {opts.db} in {time.perf_counter() - began:.0f} s")
    catalogue = Catalogue(opts.db)
    catalogue.migrate()
    conn = catalogue.conn
    tasks, results = conn.execute(
        "SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM results)").fetchone()
    print(f"{results} results in {tasks} tasks, SQLite {sqlite3.sqlite_version}")
    first = browse.gallery(conn)
    deep = conn.execute("SELECT id FROM tasks ORDER BY id LIMIT 1 OFFSET 1000").fetchone()[0]
    cases = {
        "first page": browse.Filters(),
        "model (rare, oldest)": browse.Filters(model="runware:other@1"),
        "provider sandbox": browse.Filters(provider="sandbox"),
        "size 512x512": browse.Filters(size="512x512"),
        "status error": browse.Filters(status="error"),
        "starred": browse.Filters(starred=True),
        "one day, long ago": browse.Filters(since="2025-01-10", until="2025-01-10"),
        "search common prefix 'light'": browse.Filters(q="light"),
        "search rare word 'zanzibar'": browse.Filters(q="zanzibar"),
        "search phrase '\"golden hour\"'": browse.Filters(q='"golden hour"'),
        "search no match 'qqqq'": browse.Filters(q="qqqq"),
        "sandbox + 512x512 + 'fog'": browse.Filters(provider="sandbox", size="512x512",
                                                     q="fog"),
        "worst: 'light' + the rare old model": browse.Filters(q="light",
                                                             model="runware:other@1"),
        "worst: 'light' + starred": browse.Filters(q="light", starred=True),
    }
    for label, filters in cases.items():
        timed(f"gallery: {label}", lambda f=filters: browse.gallery(conn, f))
    timed("gallery: a deep page (cursor near the oldest)",
          lambda: browse.gallery(conn, cursor=f"{deep}.0"))
    timed("gallery: page 2", lambda: browse.gallery(conn, cursor=first.next))
    for label, filters in cases.items():
        timed(f"summary: {label}", lambda f=filters: browse.summary(conn, f), repeat=3)
    timed("filter choices: models", lambda: browse.models(conn))
    timed("filter choices: sizes", lambda: browse.sizes(conn))


if __name__ == "__main__":
    main()
