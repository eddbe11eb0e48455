"""The archive's side of a books pass and the /costs page with its books section, on a
generated catalogue (one year of results, as ``bench/costs_scale.py`` builds it).

    .venv/bin/python -m bench.books_scale [--results 1000000] [--keep DIR]

Prints, best of 5, each beside a baseline measured in the same run on the same catalogue:
the books' per-day archive totals for a week (``archive.books.archive_day``, which reads the
tasks submitted each day) against the rollup's totals for the same seven days
(``archive.costs.totals``, what the cost reports read); and ``GET /costs`` with a stored
books pass against the same page before any pass (its section saying "not checked yet").
"""

import argparse
import os
import random
import tempfile
import time
from datetime import date, timedelta

from archive import books, costs
from archive.catalogue import Catalogue
from bench.costs_scale import generate, machine

WEEK = [date(2026, 10, 25) + timedelta(days=i) for i in range(7)]  # the year's last week


def best(fn, repeat=5):
    """The best of ``repeat`` runs of ``fn``, in milliseconds."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times) * 1000


def stored_pass(catalogue, tz):
    """A books pass as the worker would store it (Runware's side made equal to ours)."""
    days = [books.archive_day(catalogue.conn, d, tz, "runware") for d in WEEK]
    for day in days:
        day.runware, day.own_key = day.archive, day.archive
    books.store(catalogue, days, {"timezone": tz.key, "balance": 100.0, "currency": "USD",
                                  "burn_7_days": 1.0, "runway_days": 700.0})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=1_000_000)
    parser.add_argument("--keep", help="build the catalogue in this folder and keep it")
    args = parser.parse_args()
    folder = args.keep or tempfile.mkdtemp(prefix="books-bench-")
    os.makedirs(folder, exist_ok=True)
    print(f"machine: {machine()}")
    catalogue = Catalogue(os.path.join(folder, "catalogue.db"), synchronous="OFF")
    catalogue.migrate()
    if not catalogue.conn.execute("SELECT count(*) FROM tasks").fetchone()[0]:
        seconds, _ = generate(catalogue, args.results, random.Random(6))
        print(f"built {args.results:,} results in {seconds:.0f} s")
    catalogue.conn.execute("ANALYZE")
    tz, conn = costs.zone("Europe/Berlin"), catalogue.conn
    ours = best(lambda: [books.archive_day(conn, d, tz, "runware") for d in WEEK])
    rollup = best(lambda: [costs.totals(conn, *costs.bounds(tz, d, d)) for d in WEEK])
    print(f"a week of the books' archive totals: {ours:.1f} ms; the rollup's totals for the "
          f"same days: {rollup:.1f} ms (ratio {ours / rollup:.1f})")
    page(folder, catalogue, tz)


def page(folder, catalogue, tz):
    """``GET /costs`` before any pass and with one stored, twice each, alternating (A B A B)
    after a warm-up, so neither side gets the cold caches."""
    from receiver import create_app
    app = create_app({"RUNWARE_ARCHIVE_DIR": folder, "TESTING": True,
                      "RUNWARE_ARCHIVE_TIMEZONE": tz.key, "RUNWARE_ARCHIVE_FETCHER": "off"})
    client = app.test_client()
    for _ in range(3):
        client.get("/costs")
    figures = []
    for _ in range(2):
        with catalogue.write() as conn:
            conn.execute("DELETE FROM books_days")
            conn.execute("DELETE FROM books_account")
        before = best(lambda: client.get("/costs").status_code)
        stored_pass(catalogue, tz)
        after = best(lambda: client.get("/costs").status_code)
        figures.append((before, after))
    for before, after in figures:
        print(f"GET /costs: {before:.1f} ms before any books pass, {after:.1f} ms with a week "
              f"stored (ratio {after / before:.2f})")


if __name__ == "__main__":
    main()
