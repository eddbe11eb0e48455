"""Fill a catalogue with N realistic results, fast, for the scale benchmarks.

    .venv/bin/python bench/generate_catalogue.py --results 1000000 --out /tmp/big-data

Tasks of 1-4 results with prompts composed from a vocabulary (so search has real work; a
few rare words too), sizes and steps as people use them, dates spread over the last year,
costs per the price formula with a few results missing their cost, some re-runs, some
stars. Rows go straight in with executemany (the schema's own triggers keep the search
index and cost rollups), in big transactions with synchronous=OFF: this is a fixture, not
a durability test.
"""

import argparse
import json
import random
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from archive.catalogue import Catalogue  # noqa: E402
from archive.pricing import cost_per_image  # noqa: E402

MODEL = "runware:twinflow-z-image-turbo@0"
SUBJECTS = ["glasshouse train platform", "lantern bazaar", "tidal library atrium",
            "copper aviary market", "mountain observatory", "floating tea house",
            "desert caravanserai", "clockwork greenhouse", "harbor at twilight",
            "abandoned cathedral", "neon night market", "orchard monastery",
            "ice cave shrine", "canal city bridge", "lighthouse on cliffs", "fox",
            "portrait of an astronaut", "bowl of ramen", "vintage motorcycle", "koi pond"]
DETAILS = ["warm morning light", "soft mist", "volumetric light", "cinematic wide shot",
           "intricate details", "rich color harmony", "painterly realism", "crisp textures",
           "dramatic shadows", "golden hour", "rain reflections", "snowfall", "drone view",
           "highly detailed", "concept art", "watercolor", "35mm film grain", "isometric",
           "children releasing paper kites", "brass railings", "hanging ferns", "steam"]
SIZES = [(1024, 1024)] * 5 + [(1024, 768), (768, 1024), (1024, 576), (1280, 720), (512, 512)]
LABELS = [None, None, None, "client-acme", "client-globex", "personal", "moodboard"]
RARE = ["axolotl", "quetzal", "zeppelin", "marzipan"]  # each in about one prompt in 4,000


def prompt(rng, seed):
    """A prompt from the vocabulary; one seed in a thousand adds a rare word (chosen by the
    seed, so the random sequence, and every other row, stays as it was)."""
    words = [rng.choice(SUBJECTS)] + rng.sample(DETAILS, rng.randint(4, 9))
    if seed % 1000 == 0:
        words.append(RARE[seed // 1000 % len(RARE)])
    return "A " + ", ".join(words)


def stamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def generate(data_dir, total, seed=1, batch=20000):
    """Write ``total`` results; returns (tasks, results, seconds)."""
    rng = random.Random(seed)
    catalogue = Catalogue(Path(data_dir) / "catalogue.db", synchronous="OFF")
    catalogue.migrate()
    conn = catalogue.conn
    start = datetime.now(timezone.utc) - timedelta(days=365)
    step = timedelta(days=365) / total
    made = tasks_made = 0
    roots, began = [], time.perf_counter()
    while made < total:
        task_rows, result_rows = [], []
        while len(result_rows) < batch and made < total:
            n = min(rng.choice((1, 1, 2, 4, 4)), total - made)
            width, height = rng.choice(SIZES)
            steps = rng.choice((4, 4, 4, 6, 8))
            task_uuid, created = str(uuid.uuid4()), start + step * made
            parent = rng.choice(roots) if roots and rng.random() < 0.05 else None
            seed0 = rng.randrange(2**32)
            params = {"taskType": "imageInference", "taskUUID": task_uuid, "model": MODEL,
                      "positivePrompt": prompt(rng, seed0), "width": width, "height": height,
                      "steps": steps, "CFGScale": 3.5, "numberResults": n, "seed": seed0}
            unit = cost_per_image(width, height, steps)
            task_rows.append((
                task_uuid, stamp(created), stamp(created), MODEL, params["positivePrompt"],
                width, height, steps, 3.5, seed0, n, json.dumps(params), "runware",
                "complete", parent, "exact" if parent else None, n, unit * n,
                rng.choice(LABELS), stamp(created), stamp(created + timedelta(seconds=3))))
            for i in range(n):
                received = created + timedelta(seconds=1 + i)
                cost = None if rng.random() < 0.001 else unit
                image = str(uuid.uuid4())
                result_rows.append((
                    image, task_uuid, stamp(received), seed0 + i, cost,
                    f"https://im.runware.ai/image/os/a1/ws/2/ii/{image}.jpg", "URL",
                    "archived", int(rng.random() < 0.03), "{}"))
            if len(roots) < 5000 and rng.random() < 0.1:
                roots.append(task_uuid)
            made += n
            tasks_made += 1
        insert(conn, task_rows, result_rows)
    conn.execute("PRAGMA optimize")
    return tasks_made, made, time.perf_counter() - began


def insert(conn, task_rows, result_rows):
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO tasks (task_uuid, created_at, updated_at, model, positive_prompt,"
        " width, height, steps, cfg_scale, seed, number_results, params, provider, status,"
        " parent_task_uuid, rerun_mode, results_received, estimate, label, acknowledged_at,"
        " completed_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", task_rows)
    conn.executemany(
        "INSERT INTO results (image_uuid, task_uuid, received_at, seed, cost, image_url,"
        " output_kind, archive_state, starred, raw) VALUES (?,?,?,?,?,?,?,?,?,?)",
        result_rows)
    conn.execute(
        "UPDATE tasks SET cost = (SELECT sum(cost) FROM results r WHERE r.task_uuid ="
        " tasks.task_uuid), cost_missing = (SELECT total(cost IS NULL) FROM results r"
        " WHERE r.task_uuid = tasks.task_uuid) WHERE id > (SELECT max(id) FROM tasks) - ?",
        (len(task_rows),))
    conn.execute("COMMIT")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=int, default=1_000_000)
    parser.add_argument("--out", required=True, help="data folder to create")
    args = parser.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    tasks, results, seconds = generate(args.out, args.results)
    print(f"{results} results in {tasks} tasks written to {args.out} in {seconds:.1f}s")


if __name__ == "__main__":
    main()
