"""The gallery's search over prompt, negative prompt, label and seed against the prompt-only
search it replaced, on one catalogue in one run, and what migration 26 costs to apply.

    .venv/bin/python -m bench.search [--results 1000000] [--db /tmp/search-bench.db]

Builds a catalogue of synthetic tasks (bench/history.py's, plus a label on two tasks in
five and a negative prompt on one in three) through the migrations before version 26,
once, and keeps a copy. Each run starts from two copies of it: on the old one it rebuilds
the index as version 11 did (the baseline of the backfill), on the new one it applies
migration 26 (the index rebuilt with the label; the seed and label indexes), each timed.
Both indexes are then freshly merged, so the queries compare like with like: today's
prompt-only expression (``positive_prompt : "light"*``) on the old copy against the new
search on the new one, taken in turns (best of seven each), and the new kinds of query
alone.
"""

import argparse
import os
import random
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from archive import browse, migrations
from archive.catalogue import Catalogue
from archive.search import Plan
from bench.common import machine
from bench.history import _task, insert, timed

LABELS = ("client-a", "client-b", "portfolio", "tests", "night shoot")
NEGATIVES = ("blurry, text, watermark", "extra fingers, bad hands", "low quality, jpeg")
# Today's prompt-only searches, as the gallery ran them before (the baseline).
BASELINE = {"common prefix 'light'": 'positive_prompt : "light"*',
            "rare word 'zanzibar'": 'positive_prompt : "zanzibar"*',
            "phrase '\"golden hour\"'": 'positive_prompt : "golden hour"',
            "no match 'qqqq'": 'positive_prompt : "qqqq"*'}
BEFORE = [m for m in migrations.MIGRATIONS if m.version < 26]
M026 = next(m for m in migrations.MIGRATIONS if m.version == 26)


def build(path, target):
    """A catalogue at ``path`` with about ``target`` results, at the versions before 26."""
    everything = migrations.MIGRATIONS
    migrations.MIGRATIONS = BEFORE
    try:
        catalogue = Catalogue(path, synchronous="OFF")
        catalogue.migrate()
    finally:
        migrations.MIGRATIONS = everything
    rng, conn, made, index = random.Random(5), catalogue.conn, 0, 0
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    while made < target:
        conn.execute("BEGIN")
        for _ in range(10000):
            row, results = _task(rng, index, start)
            index += 1
            if rng.random() < 0.4:
                row["label"] = rng.choice(LABELS)
            if rng.random() < 0.33:
                row["negative_prompt"] = rng.choice(NEGATIVES)
            made += insert(conn, row, results)
        conn.execute("COMMIT")
    conn.execute("ANALYZE")
    catalogue.close()


def after(seed):
    """The new searches ``(label, query, the baseline case it compares with or None)``."""
    return [
        ("common prefix 'light'", "light", "common prefix 'light'"),
        ("rare word 'zanzibar'", "zanzibar", "rare word 'zanzibar'"),
        ("phrase '\"golden hour\"'", '"golden hour"', "phrase '\"golden hour\"'"),
        ("no match 'qqqq'", "qqqq", "no match 'qqqq'"),
        ("negative prompt 'neg:hands'", "neg:hands", None),
        ("label word 'portfolio'", "portfolio", None),
        ("'light -fog'", "light -fog", None),
        ("'zanzibar OR qqqq'", "zanzibar OR qqqq", None),
        ("'fog OR rain'", "fog OR rain", None),
        (f"a seed '{seed}'", str(seed), None),
        (f"'seed:{seed}'", f"seed:{seed}", None),
        ("exclusion only '-light'", "-light", None),
        ("exclusion only '-zanzibar'", "-zanzibar", None),
    ]


def best_ms(func, repeat=5):
    """Best of ``repeat`` runs of ``func``, in milliseconds."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - began)
    return best * 1000


def paired_ms(old, new, repeat=7):
    """Best of ``repeat`` runs of each, taken in turns, so a change in the machine's load
    falls on both: ``(old ms, new ms)``."""
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for i, func in enumerate((old, new)):
            began = time.perf_counter()
            func()
            best[i] = min(best[i], time.perf_counter() - began)
    return best[0] * 1000, best[1] * 1000


def timed_write(catalogue, statement):
    """Seconds one write transaction running ``statement(conn)`` takes."""
    began = time.perf_counter()
    with catalogue.write() as conn:
        statement(conn)
    return time.perf_counter() - began


def prepare(opts):
    """``(old, new)`` catalogues: two copies of the template, the old one's index rebuilt
    as version 11 did, the new one migrated to 26; prints what each took."""
    template = opts.db + ".before-26"
    if not os.path.exists(template):
        began = time.perf_counter()
        build(template, opts.results)
        print(f"built {template} in {time.perf_counter() - began:.0f} s")
    old_path, new_path = opts.db + ".old", opts.db
    for path in (old_path, new_path):
        shutil.copyfile(template, path)
    old, new = Catalogue(old_path), Catalogue(new_path)
    tasks, results = old.conn.execute(
        "SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM results)").fetchone()
    print(f"{results} results in {tasks} tasks")
    eleven = timed_write(old, lambda c: c.execute(
        "INSERT INTO tasks_fts (tasks_fts) VALUES ('rebuild')"))
    print(f"the index of version 11 rebuilt (prompt, negative prompt), as m011 did: {eleven:.1f} s")
    took = timed_write(new, lambda c: migrations._run(c, M026))
    print(f"migration 26 (the index rebuilt with labels; seed and label indexes): {took:.1f} s"
          f" ({took / eleven:.2f}× version 11's rebuild, the same run)")
    for catalogue in (old, new):
        catalogue.conn.execute("ANALYZE")
    return old, new


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=1_000_000)
    parser.add_argument("--db", default="/tmp/search-bench.db")
    opts = parser.parse_args()
    print(f"machine: {machine()}; load {os.getloadavg()[0]:.2f}")
    print(f"command: {' '.join([Path(sys.executable).name, '-m', 'bench.search', *sys.argv[1:]])}")
    old, new = prepare(opts)
    seed = new.conn.execute("SELECT seed FROM results ORDER BY id LIMIT 1 OFFSET 5000").fetchone()[0]
    print("   before      after  ratio  the gallery's first page of a search")
    for label, q, versus in after(seed):
        if versus:
            ms_old, ms_new = paired_ms(
                lambda f=BASELINE[versus]: browse.gallery(old.conn, plan=Plan(fts=f)),
                lambda q=q: browse.gallery(new.conn, browse.Filters(q=q)))
            print(f"{ms_old:6.2f} ms  {ms_new:6.2f} ms  {ms_new / ms_old:4.2f}×  {label}")
        else:
            ms = best_ms(lambda q=q: browse.gallery(new.conn, browse.Filters(q=q)))
            print(f"{'':9}  {ms:6.2f} ms         {label} (new)")
    for label, q, _ in after(seed)[:1] + after(seed)[9:11]:
        ms = best_ms(lambda q=q: browse.summary(new.conn, browse.Filters(q=q)), repeat=3)
        print(f"{'':9}  {ms:6.2f} ms         the summary line: {label}")
    timed("label filter 'portfolio'",
          lambda: browse.gallery(new.conn, browse.Filters(label="portfolio")))
    timed("labels in use (the select)", lambda: browse.labels(new.conn))
    old.close()
    new.close()


if __name__ == "__main__":
    main()
