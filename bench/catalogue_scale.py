"""Catalogue at scale: server time of the pages at 10,000 and 1,000,000
results.

    .venv/bin/python bench/catalogue_scale.py --keep /tmp/catalogue-scale

Fills (or, with ``--keep DIR``, reuses ``DIR/r10000`` and ``DIR/r1000000``) catalogues made
by ``bench/generate_catalogue.py``, opens each with ``create_app`` (an API key set, so no
sandbox is mounted, no fetcher, dates in Europe/Berlin, a daily and a monthly budget) and
times every request through Flask's test client: routing, queries and template rendering,
no network. Each page is warmed up, then requested ``--requests`` times with varied
parameters, alternating between the two catalogues so that other load falls on both:
the gallery's first page; a deep page (the gallery's own ``<task id>.<result id>``
cursor, picked at random in the oldest tenth of the table); searches (a common word that
is also a prefix of another, a prefix, a phrase, a subject, two rare words, a word in no
prompt); task pages (random tasks); the cost dashboard. Three more rows are measured the
same way: re-runs' task pages (a parent, children, seed variants), searches for words
that are each common but rare together (FTS5 walks their lists however few match), and
the dashboard for one month. Prints p50/p95 per page and size, the ratio of the 1M p95 to
the 10k p95, and PASS/FAIL against the target: p95 <= 50 ms at 1M and <= 1.5 x the 10k
figure; exits 1 when one of the five pages the issue names fails.
"""

import argparse
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine, percentile  # noqa: E402
from bench.generate_catalogue import generate  # noqa: E402

SIZES = (10_000, 1_000_000)
TARGET_MS = 50.0
TARGET_RATIO = 1.5
WARMUP = 5
SEARCHES = ("light", "harb", '"golden hour"', "caravanserai", "axolotl", "quetzal", "zanzibar")
RARELY_TOGETHER = ("fox snowfall isometric steam", '"neon night market" watercolor drone')
REQUIRED = ("gallery first page", "gallery deep page", "search", "task page", "costs dashboard")
CONFIG = {"TESTING": True, "RUNWARE_API_KEY": "bench-key", "RUNWARE_ARCHIVE_FETCHER": "off",
          "RUNWARE_ARCHIVE_TIMEZONE": "Europe/Berlin",
          "RUNWARE_ARCHIVE_BUDGET_DAILY": 1000.0, "RUNWARE_ARCHIVE_BUDGET_MONTHLY": 20000.0}


def catalogue_dir(root, results):
    """A data folder holding ``results`` generated results, made unless already there."""
    folder = Path(root) / f"r{results}"
    db = folder / "catalogue.db"
    if db.exists():
        conn = sqlite3.connect(db)
        have = conn.execute("SELECT count(*) FROM results").fetchone()[0]
        conn.close()
        if have == results:
            print(f"reusing {folder} ({have:,} results)")
            return folder
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    tasks, made, seconds = generate(folder, results)
    print(f"generated {made:,} results in {tasks:,} tasks in {folder} in {seconds:.0f} s")
    return folder


def make_app(folder):
    """The service on ``folder``, with none of the caller's ``RUNWARE_*`` settings."""
    from receiver import config as settings
    from receiver import create_app

    for key in settings.DEFAULTS:
        os.environ.pop(key, None)
    return create_app({**CONFIG, "RUNWARE_ARCHIVE_DIR": str(folder)})


def urls(conn, n, rng):
    """``{page: [url, …]}``, ``n`` varied requests of each page."""
    low, high = conn.execute("SELECT min(id), max(id) FROM tasks").fetchone()
    deep = []
    while len(deep) < n:
        task_id = rng.randint(low, low + (high - low) // 10)
        row = conn.execute("SELECT t.id, max(r.id) FROM tasks t JOIN results r"
                           " ON r.task_uuid = t.task_uuid WHERE t.id = ?", (task_id,)).fetchone()
        if row[0]:
            deep.append(f"/?cursor={row[0]}.{row[1]}")
    picks = [conn.execute("SELECT task_uuid FROM tasks WHERE id = ?",
                          (rng.randint(low, high),)).fetchone()[0] for _ in range(n)]
    reruns = [row[0] for row in conn.execute(
        "SELECT task_uuid FROM tasks WHERE parent_task_uuid IS NOT NULL"
        " ORDER BY random() LIMIT ?", (n,))]
    months = [row[0] for row in conn.execute(
        "SELECT DISTINCT substr(created_at, 1, 7) FROM tasks")][1:-1]
    month_urls = [f"/costs?from={m}-01&to={m}-28" for m in months]
    return {
        "gallery first page": ["/"] * n,
        "gallery deep page": deep,
        "search": ["/?" + urlencode({"q": SEARCHES[i % len(SEARCHES)]}) for i in range(n)],
        "task page": [f"/tasks/{u}" for u in picks],
        "costs dashboard": ["/costs"] * n,
        "task page, re-run": [f"/tasks/{u}" for u in (reruns * n)[:n]],
        "search, rarely together": ["/?" + urlencode({"q": RARELY_TOGETHER[i % 2]})
                                    for i in range(n)],
        "costs, one month": [month_urls[i % len(month_urls)] for i in range(n)],
    }


def get(client, url):
    """Milliseconds to answer ``url``, asserting a 200."""
    began = time.perf_counter()
    response = client.get(url)
    spent = (time.perf_counter() - began) * 1000
    assert response.status_code == 200, (url, response.status_code)
    return spent


def run(folders, n, seed):
    """``[{page: (p50, p95)}]``, one per catalogue. Each page is warmed up, then asked of
    the catalogues in turn, request by request, so a burst of load elsewhere on the
    machine falls on both sizes alike."""
    apps = [make_app(folder) for folder in folders]
    clients = [app.test_client() for app in apps]
    plans = [urls(app.extensions["catalogue"].conn, n, random.Random(seed)) for app in apps]
    figures = [{} for _ in apps]
    for page in plans[0]:
        for client, plan in zip(clients, plans):
            for url in plan[page][:WARMUP]:
                get(client, url)
        spent = [[] for _ in apps]
        for i in range(n):
            for k, (client, plan) in enumerate(zip(clients, plans)):
                spent[k].append(get(client, plan[page][i]))
        for k, times in enumerate(spent):
            figures[k][page] = (percentile(times, 50), percentile(times, 95))
    for app in apps:
        app.extensions["catalogue"].close()
    return figures


def report(small, large):
    """Print the table; returns True when every page the issue names passes."""
    print(f"\n{'page':<24} {'10k p50':>8} {'10k p95':>8} {'1M p50':>8} {'1M p95':>8}"
          f" {'1M/10k':>7}  verdict")
    ok = True
    for page in small:
        (s50, s95), (l50, l95) = small[page], large[page]
        ratio = l95 / s95
        passed = l95 <= TARGET_MS and ratio <= TARGET_RATIO
        ok &= passed or page not in REQUIRED
        print(f"{page:<24} {s50:8.1f} {s95:8.1f} {l50:8.1f} {l95:8.1f} {ratio:7.2f}  "
              f"{'PASS' if passed else 'FAIL'}{'' if page in REQUIRED else ' (extra)'}")
    print(f"target: p95 <= {TARGET_MS:.0f} ms at 1M and <= {TARGET_RATIO} x the 10k p95;"
          " milliseconds of server time per request")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", help="make (or reuse) the catalogues in this folder")
    parser.add_argument("--requests", type=int, default=60, help="per page and size")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    root = args.keep or tempfile.mkdtemp(prefix="catalogue-scale-")
    print(f"machine: {machine()}, SQLite {sqlite3.sqlite_version}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    try:
        folders = [catalogue_dir(root, size) for size in SIZES]
        print(f"load before: {os.getloadavg()[0]:.2f}")
        figures = run(folders, args.requests, args.seed)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"load after: {os.getloadavg()[0]:.2f}")
    sys.exit(0 if report(*figures) else 1)


if __name__ == "__main__":
    main()
