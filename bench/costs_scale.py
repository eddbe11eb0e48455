"""Cost queries on a generated catalogue of 1,000,000 results.

    .venv/bin/python bench/costs_scale.py [--results 1000000] [--keep DIR]

Builds a catalogue of one year of results (4 per task, 2 models, 6 sizes, 20 labels and
none, 2 providers by default, 5% without a cost, 10% of tasks re-runs, 2% of results
starred) through the real schema, so the rollup triggers run for every insert; then
times each report, the budget check, the ledger export and the dashboard, and prints the
figures. ``--labels 3 --sizes 2`` gives a catalogue with fewer distinct groups.
"""

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archive import budgets, costs  # noqa: E402
from archive.catalogue import Catalogue  # noqa: E402

START = datetime(2025, 11, 1, tzinfo=timezone.utc)
SIZES = [(1024, 1024), (1024, 768), (768, 1024), (1024, 576), (512, 512), (1536, 1024)]
MODELS = ["runware:twinflow-z-image-turbo@0", "runware:z-image@turbo"]
PER_TASK = 4


def machine():
    """One line about this machine, for the figures."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "unknown cpu") \
        if os.path.exists("/proc/cpuinfo") else "unknown cpu"
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"


def stamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def generate(catalogue, n_results, rng, *, labels=20, sizes=6):
    """Insert tasks and results in batches; returns (seconds, tasks)."""
    n_tasks = n_results // PER_TASK
    label_names = [None] + [f"client-{i:02d}" for i in range(labels)]
    conn = catalogue.conn
    began = time.perf_counter()
    uuids = []
    for batch_start in range(0, n_tasks, 10_000):
        tasks, results = [], []
        for i in range(batch_start, min(batch_start + 10_000, n_tasks)):
            task_uuid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            created = START + timedelta(seconds=365 * 86400 * i / n_tasks)
            width, height = rng.choice(SIZES[:sizes])
            parent = rng.choice(uuids) if uuids and rng.random() < 0.1 else None
            uuids.append(task_uuid)
            estimate = 0.0006 * PER_TASK * max(1, width * height / 2**20)
            tasks.append((task_uuid, stamp(created), stamp(created), rng.choice(MODELS),
                          f"bench prompt {i}", width, height, 4, PER_TASK, "{}",
                          rng.choice(["runware", "sandbox"]), "complete", parent,
                          rng.choice(label_names), round(estimate, 4), PER_TASK))
            for k in range(PER_TASK):
                cost = None if rng.random() < 0.05 else rng.choice([0.0006, 0.0013, 0.0032])
                received = created + timedelta(seconds=2 + k)
                results.append((str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                                task_uuid, stamp(received), rng.randrange(2**31), cost,
                                "URL", "archived", int(rng.random() < 0.02), "{}"))
        with catalogue.write() as conn:
            conn.executemany(
                "INSERT INTO tasks (task_uuid, created_at, updated_at, model, positive_prompt,"
                " width, height, steps, number_results, params, provider, status,"
                " parent_task_uuid, label, estimate, results_received)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", tasks)
            conn.executemany(
                "INSERT INTO results (image_uuid, task_uuid, received_at, seed, cost,"
                " output_kind, archive_state, starred, raw) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                results)
            conn.execute(
                "UPDATE tasks SET (cost, cost_missing) = (SELECT sum(cost),"
                " total(cost IS NULL) FROM results r WHERE r.task_uuid = tasks.task_uuid)"
                " WHERE id > (SELECT max(id) FROM tasks) - ?", (len(tasks),))
    with catalogue.write() as conn:  # the last 200 tasks are still in flight
        conn.execute("UPDATE tasks SET status = 'submitted' WHERE id > (SELECT max(id) - 200"
                     " FROM tasks)")
    return time.perf_counter() - began, uuids


def trigger_cost(folder, rng, n=50_000):
    """Seconds to insert ``n`` results with and without the rollup triggers."""
    out = {}
    for with_triggers in (True, False):
        cat = Catalogue(os.path.join(folder, f"trig-{with_triggers}.db"), synchronous="OFF")
        cat.migrate()
        if not with_triggers:
            for name in ("results_cost_ai", "results_cost_ad", "results_cost_au"):
                cat.conn.execute(f"DROP TRIGGER {name}")
        out[with_triggers], _ = generate(cat, n, random.Random(1))
        cat.close()
    return out


def timed(label, fn, repeat=3):
    best = None
    for _ in range(repeat):
        began = time.perf_counter()
        value = fn()
        spent = time.perf_counter() - began
        best = spent if best is None else min(best, spent)
    print(f"  {label:<58} {best * 1000:9.1f} ms")
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=1_000_000)
    parser.add_argument("--keep", help="build the catalogue in this folder and keep it")
    parser.add_argument("--labels", type=int, default=20, help="labels besides none")
    parser.add_argument("--sizes", type=int, default=6, choices=range(1, 7))
    args = parser.parse_args()
    folder = args.keep or tempfile.mkdtemp(prefix="costs-bench-")
    os.makedirs(folder, exist_ok=True)
    rng = random.Random(6)
    print(f"machine: {machine()}")
    catalogue = Catalogue(os.path.join(folder, "catalogue.db"), synchronous="OFF")
    catalogue.migrate()
    seconds, uuids = generate(catalogue, args.results, rng, labels=args.labels,
                              sizes=args.sizes)
    conn = catalogue.conn
    conn.execute("ANALYZE")
    rows = conn.execute("SELECT count(*) FROM cost_rollup").fetchone()[0]
    size = os.path.getsize(catalogue.path) / 2**20
    print(f"{args.labels} labels and none, {args.sizes} sizes, 2 models, 2 providers")
    print(f"built {args.results:,} results / {len(uuids):,} tasks in {seconds:.1f} s "
          f"({args.results / seconds:,.0f} results/s with the rollup triggers); "
          f"{rows:,} rollup rows; {size:.0f} MiB")
    cost = trigger_cost(folder, rng)
    print(f"50,000 inserts: {cost[True]:.2f} s with the triggers, {cost[False]:.2f} s without "
          f"(+{(cost[True] / cost[False] - 1) * 100:.0f}%, tasks and FTS included)")

    utc, berlin = costs.zone("UTC"), costs.zone("Europe/Berlin")
    kathmandu = costs.zone("Asia/Kathmandu")
    may = dict(first=date(2026, 5, 1), last=date(2026, 5, 31))
    print("queries (best of 3):")
    for tz in (utc, berlin, kathmandu):
        timed(f"report all time by day, {tz.key}",
              lambda tz=tz: costs.report(conn, tz, group="day"))
    for group in ("week", "month", "model", "size", "label", "provider"):
        timed(f"report all time by {group}, Europe/Berlin",
              lambda g=group: costs.report(conn, berlin, group=g))
    timed("report May 2026 by day, Europe/Berlin",
          lambda: costs.report(conn, berlin, group="day", **may))
    timed("daily series, last 30 days (dashboard chart)",
          lambda: costs.daily_series(conn, berlin, date(2026, 10, 31)))
    plan = budgets.Budget(daily=50.0, monthly=500.0, tz=berlin)
    now = datetime(2026, 10, 31, 12, tzinfo=timezone.utc)
    timed("budget check at submit (daily + monthly + in flight)",
          lambda: budgets.refusal(conn, plan, 0.0024, now))
    timed("in flight alone", lambda: budgets.in_flight(conn))
    timed("most expensive tasks, all time", lambda: costs.top_tasks(conn, limit=10))
    timed("most expensive tasks, May 2026",
          lambda: costs.top_tasks(conn, start=costs.bounds(berlin, **may)[0],
                                  end=costs.bounds(berlin, **may)[1]))
    timed("families: top 10 by cost, with cost per keeper", lambda: costs.families(conn))
    timed("family of one task", lambda: costs.family(conn, uuids[len(uuids) // 2]))
    month_rows = timed("CSV ledger, May 2026 (all rows)", lambda: sum(
        chunk.count("\n") for chunk in costs.ledger_csv(
            conn, berlin, *costs.bounds(berlin, **may))), repeat=1)
    all_rows = timed("CSV ledger, everything", lambda: sum(
        chunk.count("\n") for chunk in costs.ledger_csv(conn, berlin)), repeat=1)
    print(f"  (ledger lines: {month_rows - 1:,} in May, {all_rows - 1:,} in all)")
    timed("naive: every result row folded in Python (for comparison)",
          lambda: len({datetime.fromisoformat(r).astimezone(berlin).date() for r, in
                       conn.execute("SELECT received_at FROM results")}), repeat=1)
    dashboard(folder)


def dashboard(folder):
    """The whole /costs page and /api/costs through the app, on this catalogue."""
    from receiver import create_app

    app = create_app({"RUNWARE_ARCHIVE_DIR": folder, "TESTING": True,
                      "RUNWARE_ARCHIVE_TIMEZONE": "Europe/Berlin",
                      "RUNWARE_ARCHIVE_BUDGET_DAILY": 50.0,
                      "RUNWARE_ARCHIVE_BUDGET_MONTHLY": 500.0,
                      "RUNWARE_ARCHIVE_FETCHER": "off"})
    client = app.test_client()
    timed("GET /costs (whole dashboard)", lambda: client.get("/costs").status_code)
    timed("GET /api/costs?group=day", lambda: client.get("/api/costs?group=day").status_code)
    timed("GET /api/costs?group=label&from=2026-05-01&to=2026-05-31",
          lambda: client.get("/api/costs?group=label&from=2026-05-01&to=2026-05-31")
          .status_code)


if __name__ == "__main__":
    main()
