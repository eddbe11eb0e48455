"""A task's relatives and its timeline (no Flask); starring and deleting are archive.curation.

Lineage is the ``parent_task_uuid`` link a re-run carries. A task's *family* is its root
ancestor and every descendant of it; its *seed variants* are the family members whose
parameters equal its own in everything but the seed.
"""

import json
from dataclasses import dataclass

MAX_DEPTH = 50
MAX_FAMILY = 500
# What two tasks may differ in and still be "the same request, another seed".
NOT_COMPARED = ("seed", "taskUUID", "webhookURL", "includeCost", "uploadEndpoint")


def _rows(cur):
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def children(conn, task_uuid):
    """The direct re-runs of ``task_uuid``, oldest first."""
    return _rows(conn.execute(
        "SELECT * FROM tasks WHERE parent_task_uuid = ? ORDER BY id", (task_uuid,)))


def root_of(conn, task_uuid):
    """The uuid of the oldest ancestor of ``task_uuid`` still in the catalogue."""
    row = conn.execute(
        "WITH RECURSIVE up(uuid, parent, depth) AS ("
        " SELECT task_uuid, parent_task_uuid, 0 FROM tasks WHERE task_uuid = ?"
        " UNION ALL SELECT t.task_uuid, t.parent_task_uuid, up.depth + 1"
        " FROM tasks t JOIN up ON t.task_uuid = up.parent WHERE up.depth < ?)"
        " SELECT uuid FROM up ORDER BY depth DESC LIMIT 1", (task_uuid, MAX_DEPTH),
    ).fetchone()
    return row[0] if row else task_uuid


def family(conn, task_uuid):
    """Every task descending from the root of ``task_uuid`` (itself included), oldest first."""
    return _rows(conn.execute(
        "WITH RECURSIVE down(uuid, depth) AS (SELECT ?, 0"
        " UNION SELECT t.task_uuid, down.depth + 1 FROM tasks t"
        " JOIN down ON t.parent_task_uuid = down.uuid WHERE down.depth < ?)"
        " SELECT * FROM tasks WHERE task_uuid IN (SELECT uuid FROM down)"
        " ORDER BY id LIMIT ?", (root_of(conn, task_uuid), MAX_DEPTH, MAX_FAMILY),
    ))


def comparable(params):
    """``params`` (a dict or its JSON) without what a seed variant may change."""
    if isinstance(params, str):
        params = json.loads(params)
    return {k: v for k, v in params.items() if k not in NOT_COMPARED}


def seed_variants(conn, task):
    """Family members of ``task`` (a row) other than itself, its parent and its children
    whose parameters differ from its own at most in the seed."""
    mine = comparable(task["params"])
    skip = {task["task_uuid"], task["parent_task_uuid"]}
    return [other for other in family(conn, task["task_uuid"])
            if other["task_uuid"] not in skip
            and other["parent_task_uuid"] != task["task_uuid"]
            and comparable(other["params"]) == mine]


def changes(parent_params, child_params):
    """``[(parameter, parent value, child value)]`` where two requests differ (seed too)."""
    before = {k: v for k, v in _loaded(parent_params).items() if k not in NOT_COMPARED[1:]}
    after = {k: v for k, v in _loaded(child_params).items() if k not in NOT_COMPARED[1:]}
    return [(key, before.get(key), after.get(key)) for key in sorted(before.keys() | after.keys())
            if before.get(key) != after.get(key)]


def _loaded(params):
    return json.loads(params) if isinstance(params, str) else dict(params)


@dataclass
class Event:
    """One line of a task's timeline."""

    at: str
    what: str
    detail: str = ""
    delivery_id: int = None


def timeline(task, deliveries):
    """The task's events in time order: recorded, sent, acknowledged, each delivery,
    each image archived, complete (``task`` has its ``results``)."""
    events = [Event(task["created_at"], "recorded", f"provider {task['provider']}")]
    if task.get("submitted_at"):
        events.append(Event(task["submitted_at"], "sent to the provider"))
    if task.get("acknowledged_at"):
        events.append(Event(task["acknowledged_at"], "acknowledged by the provider"))
    for d in deliveries:
        detail = f"{d['source']}, HTTP {d['status_code']}"
        if d["verdict"] == "rejected":
            detail += f": {d['reason']}"
        else:
            detail += f", {d['results_new'] or 0} new, {d['results_duplicate'] or 0} duplicate"
            if d["errors"]:
                detail += f", {d['errors']} error(s)"
        events.append(Event(d["received_at"], f"delivery {d['verdict']}", detail, d["id"]))
    for failure in task.get("failures", ()):
        image = f"image {failure['image_uuid']}: " if failure["image_uuid"] else ""
        events.append(Event(failure["received_at"], "image failed",
                            f"{image}{failure['code']}: {failure['message']}"))
    for r in task["results"]:
        if r.get("archived_at"):
            events.append(Event(r["archived_at"], "archived", f"image {r['image_uuid']}"))
    if task.get("completed_at"):
        events.append(Event(task["completed_at"], "complete"))
    if task["status"] in ("error", "lost"):
        events.append(Event(task["updated_at"], "failed" if task["status"] == "error"
                            else "lost", f"{task['error_code']}: {task['error_message']}"))
    return sorted(events, key=lambda e: e.at)


@dataclass
class EventGroup:
    """Repeated events of one kind (every delivery accepted, every image archived), shown
    as one line that opens to the list."""

    what: str
    events: list

    @property
    def at(self):
        return self.events[0].at

    @property
    def until(self):
        return self.events[-1].at


def grouped(events):
    """``events`` (in time order) with each kind that occurs more than once folded into
    one :class:`EventGroup` where its first one was: a task of twenty images reads as
    "20 × delivery accepted", not as twenty lines."""
    by_kind = {}
    for event in events:
        by_kind.setdefault(event.what, []).append(event)
    out = []
    for event in events:
        same = by_kind[event.what]
        if len(same) == 1:
            out.append(event)
        elif same[0] is event:
            out.append(EventGroup(event.what, same))
    return out

