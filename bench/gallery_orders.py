"""The gallery's sort orders and pages both ways at "a million results", against the
newest-first first page measured in the same run.

    .venv/bin/python -m bench.gallery_orders [--results 1000000] [--db /tmp/history-bench.db]

Uses (and builds once, if missing) the catalogue of ``bench/history.py``; opening it
applies the migrations it lacks (m020's indexes). For each order and filter it times the
first page, the next one (``cursor``), the one before that (``before``), the last page and
a page deep in the middle, best of five, and prints each beside its ratio to the baseline.
"""

import argparse
import os
import sqlite3
import time

from archive import browse, ordering
from archive.catalogue import Catalogue
from bench.history import build

FILTERS = {
    "everything": browse.Filters(),
    "search 'light'": browse.Filters(q="light"),
    "search 'zanzibar' (rare)": browse.Filters(q="zanzibar"),
    "starred": browse.Filters(starred=True),
    "provider sandbox": browse.Filters(provider="sandbox"),
}


def best(func, repeat=5):
    """``(milliseconds, value)``: the best of ``repeat`` runs."""
    fastest, value = float("inf"), None
    for _ in range(repeat):
        began = time.perf_counter()
        value = func()
        fastest = min(fastest, time.perf_counter() - began)
    return fastest * 1000, value


def deep_cursor(conn, order, filters):
    """A position about half-way along ``order``: a page's ``next`` picked out of a
    middle slice (the walk to find it is not timed)."""
    page = browse.gallery(conn, filters, order=order, limit=2000)
    return page.next


def shapes(conn, order, filters):
    """The page requests to time, by name."""
    first = browse.gallery(conn, filters, order=order)
    second = browse.gallery(conn, filters, order=order, cursor=first.next) \
        if first.next else first
    return {
        "first": lambda: browse.gallery(conn, filters, order=order),
        "next": lambda: browse.gallery(conn, filters, order=order, cursor=first.next),
        "previous": lambda: browse.gallery(conn, filters, order=order,
                                           before=second.previous),
        "last": lambda: browse.gallery(conn, filters, order=order, last=True),
        "deep": lambda: browse.gallery(conn, filters, order=order,
                                       cursor=deep_cursor(conn, order, filters)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=1_000_000)
    parser.add_argument("--db", default="/tmp/history-bench.db")
    opts = parser.parse_args()
    if not os.path.exists(opts.db):
        build(opts.db, opts.results)
    began = time.perf_counter()
    catalogue = Catalogue(opts.db)
    catalogue.migrate()
    conn = catalogue.conn
    print(f"migrated in {time.perf_counter() - began:.1f} s;",
          conn.execute("SELECT count(*) FROM results").fetchone()[0], "results,",
          f"SQLite {sqlite3.sqlite_version}")
    baseline, _ = best(lambda: browse.gallery(conn))
    print(f"baseline, newest first, first page: {baseline:.2f} ms\n")
    print(f"{'order':10} {'filter':26} " + " ".join(f"{s:>16}" for s in
                                                    ("first", "next", "previous", "last",
                                                     "deep")))
    for order in ordering.ORDERS.values():
        for label, filters in FILTERS.items():
            cells = []
            for name, request in shapes(conn, order, filters).items():
                if name == "deep":
                    cursor = deep_cursor(conn, order, filters)
                    request = (lambda c=cursor: browse.gallery(conn, filters, order=order,
                                                               cursor=c))
                ms, _ = best(request)
                cells.append(f"{ms:7.2f} ms ×{ms / baseline:5.1f}")
            print(f"{order.name:10} {label:26} " + " ".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    main()
