"""What the catalogue's summaries cost the write path: CPU per delivery and per task insert,
with the schema as it was before them (migrations 1-7) and with every migration.

    .venv/bin/python bench/schema_write_cost.py [--tasks 4000]

A delivery is ``Catalogue.ingest`` of one result (its task read, the result inserted with
every trigger, the task's counters updated, the delivery logged, one commit); a task
insert is ``create_task`` in its own transaction, as a submission does (the prompt search
index included). Both on a fresh catalogue with synchronous=OFF, so the figure is CPU
(``time.process_time``, best of three), not the disk. One task in ten is a re-run.
"""

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archive import migrations  # noqa: E402
from archive.catalogue import Catalogue  # noqa: E402
from bench.common import machine  # noqa: E402
from bench.generate_catalogue import prompt  # noqa: E402

BEFORE = 7  # m007: the schema before the summaries of bench/catalogue_scale.py
RESULTS_PER_TASK = 4


def catalogue(folder, version):
    """A new catalogue at ``version`` (the first ``version`` migrations)."""
    path = Path(folder) / f"v{version}-{uuid.uuid4().hex}.db"
    everything = migrations.MIGRATIONS
    migrations.MIGRATIONS = everything[:version]
    try:
        cat = Catalogue(path, synchronous="OFF")
        cat.migrate()
    finally:
        migrations.MIGRATIONS = everything
    return cat


def task_rows(n, rng):
    rows = []
    for i in range(n):
        parent = rows[rng.randrange(i)]["task_uuid"] if i and rng.random() < 0.1 else None
        rows.append({"task_uuid": str(uuid.uuid4()), "model": "runware:twinflow-z-image-turbo@0",
                     "positive_prompt": prompt(rng, i), "width": 1024, "height": 1024,
                     "provider": "runware", "params": {}, "number_results": RESULTS_PER_TASK,
                     "estimate": 0.0024, "status": "submitted", "parent_task_uuid": parent})
    return rows


def measure(folder, version, n):
    """``(µs CPU per task insert, µs CPU per delivery)`` at ``version``."""
    cat, rows = catalogue(folder, version), task_rows(n, random.Random(1))
    began = time.process_time()
    for row in rows:
        cat.create_task(row)
    per_task = (time.process_time() - began) / n * 1e6
    began = time.process_time()
    for k in range(RESULTS_PER_TASK):
        for row in rows:
            cat.ingest(row["task_uuid"], raw_body=b"{}", results=[{
                "imageUUID": str(uuid.uuid4()), "seed": k, "cost": 0.0006,
                "imageURL": "https://im.runware.ai/image/x.jpg"}])
    per_delivery = (time.process_time() - began) / (n * RESULTS_PER_TASK) * 1e6
    cat.close()
    return per_task, per_delivery


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4000)
    args = parser.parse_args()
    print(f"machine: {machine()}; load {os.getloadavg()[0]:.2f}")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    versions = (BEFORE, len(migrations.MIGRATIONS))
    with tempfile.TemporaryDirectory(prefix="write-cost-") as folder:
        best = {v: [min(run) for run in zip(*(measure(folder, v, args.tasks)
                                              for _ in range(3)))] for v in versions}
    print(f"{'migrations':<12} {'task insert':>12} {'delivery':>10}   (µs CPU each)")
    for v in versions:
        print(f"1-{v:<10} {best[v][0]:12.1f} {best[v][1]:10.1f}")
    (t0, d0), (t1, d1) = best[versions[0]], best[versions[1]]
    print(f"added: {t1 - t0:+.1f} µs per task insert ({t1 / t0 - 1:+.0%}),"
          f" {d1 - d0:+.1f} µs per delivery ({d1 / d0 - 1:+.0%})")


if __name__ == "__main__":
    main()
