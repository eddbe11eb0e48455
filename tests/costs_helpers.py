"""Helpers for the cost tests: tasks and results with chosen costs, sizes, labels and times."""

import itertools
import json
import uuid

MODEL = "runware:twinflow-z-image-turbo@0"
_seeds = itertools.count(1)


def add_task(catalogue, *, model=MODEL, width=1024, height=1024, steps=4, label=None,
             provider="runware", estimate=None, number_results=1, status="complete",
             parent=None, created_at=None, prompt="a lighthouse at dawn", conn=None):
    """Insert a task row directly; returns its taskUUID."""
    task_uuid = str(uuid.uuid4())
    row = {"task_uuid": task_uuid, "model": model, "positive_prompt": prompt,
           "width": width, "height": height, "steps": steps, "label": label,
           "provider": provider, "estimate": estimate, "number_results": number_results,
           "status": status, "parent_task_uuid": parent, "params": {"taskUUID": task_uuid}}
    if created_at:
        row["created_at"] = created_at
    catalogue.create_task(row, conn=conn)
    return task_uuid


def add_result(catalogue, task_uuid, received_at, cost, *, starred=0):
    """Insert one result received at ``received_at`` (ISO UTC text) costing ``cost``
    (None: no cost returned) and update the task's sums as ingest does."""
    with catalogue.write() as conn:
        conn.execute(
            "INSERT INTO results (image_uuid, task_uuid, received_at, seed, cost, output_kind,"
            " archive_state, starred, raw) VALUES (?, ?, ?, ?, ?, 'URL', 'pending', ?, ?)",
            (str(uuid.uuid4()), task_uuid, received_at, next(_seeds), cost, starred,
             json.dumps({"cost": cost})))
        conn.execute(
            "UPDATE tasks SET (results_received, cost, cost_missing) = (SELECT count(*),"
            " sum(cost), total(cost IS NULL) FROM results WHERE task_uuid = ?)"
            " WHERE task_uuid = ?", (task_uuid, task_uuid))


def at(text):
    """``2024-03-31 01:30`` as the catalogue stores times: ``2024-03-31T01:30:00.000000Z``."""
    day, clock = text.split()
    if clock.count(":") == 1:
        clock += ":00"
    if "." not in clock:
        clock += ".000000"
    return f"{day}T{clock}Z"
