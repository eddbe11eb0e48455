"""The gallery's sort orders and their keyset positions (no Flask).

Every order is one index walk, so a page costs the same at the millionth result as at the
first, in either direction: a page starts *after* (``cursor``) or ends *before*
(``before``) a card's position, and the first and last pages are the two ends of the same
walk. A position is the card's sort key, then its task id and result id, which break every
tie, so no card is skipped or shown twice at a page boundary.

- newest / oldest walk tasks by ``id`` (the table's rowid), each task's results by ``id``,
  and show a task that has no result yet as one placeholder card in its place;
- largest / smallest walk tasks by pixels (``width * height``, migration m020's index),
  then by id, the same way;
- costliest / cheapest walk *results* by their own cost (m020's index), then by id: a card
  is one image, so its place follows the cost printed on it; tasks with no image (nothing
  to price) are left out of these two.
"""

import json
import math
import re
from dataclasses import dataclass

_CURSOR = re.compile(r"(?:(-?\d{1,18}(?:\.\d{1,20})?(?:e-?\d{1,3})?)_)?(\d{1,18})\.(\d{1,18})")
INT64 = 2**63 - 1
CARD_COLUMNS = (
    "t.id AS task_id, t.task_uuid, t.created_at, t.positive_prompt, t.model, t.width,"
    " t.height, t.status, t.provider, t.number_results, t.results_received,"
    " t.parent_task_uuid, t.rerun_mode, t.error_code, t.label, r.id AS result_id,"
    " r.image_uuid, r.seed, r.cost, r.archive_state, r.sha256, r.file_ext, r.starred,"
    " r.img_width, r.img_height"
)
TASKS_FIRST = "tasks t LEFT JOIN results r ON r.task_uuid = t.task_uuid"
RESULTS_FIRST = "results r CROSS JOIN tasks t ON t.task_uuid = r.task_uuid"
LISTED_FIRST = "tasks t CROSS JOIN results r ON r.task_uuid = t.task_uuid"
_TASK_ALIAS = re.compile(r"\bt\.")


@dataclass(frozen=True)
class Order:
    """One sort order: its ``key`` (an SQL expression on ``tasks t`` or ``results r``, or
    None for the task id), its direction and which table the walk follows."""

    name: str
    label: str
    key: str = None
    descending: bool = True
    by_result: bool = False  # walk results (by their own key), not tasks
    first: str = "First"  # the pager's words for the two ends and the two steps
    last: str = "Last"
    back: str = "Previous"
    forward: str = "Next"

    def sql_order(self, reverse=False, *, ties_only=False):
        """The ``ORDER BY`` terms of the walk (``reverse``: from the other end;
        ``ties_only``: the ids alone, among cards of one key)."""
        way = "DESC" if self.descending != reverse else "ASC"
        terms = [self.key] if self.key and not ties_only else []
        terms += ["r.id"] if self.by_result else ["t.id", "r.id"]
        return ", ".join(f"{term} {way}" for term in terms)

    def parts(self, position, reverse=False):
        """``[(clause, args, order by)]``: the cards after ``position`` (a
        :class:`Position`) in this walk, or before it with ``reverse``, as index ranges
        read one after the other: first the rest of the position's own key (its ties, by
        id), then every further key. Each is a range SQLite walks in its index; one
        clause with an OR would read every tie of the key (half the catalogue, when
        nearly every image costs the same) before the first card."""
        op = "<" if self.descending != reverse else ">"
        tid, rid = position.task_id, position.result_id
        if self.by_result:
            ties, args = f"r.id {op} ?", [rid]
        else:
            ties, args = f"t.id {op}= ? AND (t.id {op} ? OR r.id {op} ?)", [tid, tid, rid]
        if self.key is None:
            return [(ties, args, self.sql_order(reverse))]
        by_id = self.sql_order(reverse, ties_only=True)
        return [(f"{self.key} = ? AND {ties}", [position.key, *args], by_id),
                (f"{self.key} {op} ?", [position.key], self.sql_order(reverse))]

    def position(self, card):
        """The :class:`Position` of a card (a dict of the gallery's columns)."""
        key = card["sort_key"] if self.key is not None else None
        return Position(key, card["task_id"], card["result_id"] or 0)


ORDERS = {o.name: o for o in (
    Order("newest", "Newest first", first="Newest", last="Oldest", back="Newer",
          forward="Older"),
    Order("oldest", "Oldest first", descending=False, first="Oldest", last="Newest",
          back="Older", forward="Newer"),
    Order("costliest", "Costliest first", key="coalesce(r.cost, 0)", by_result=True),
    Order("cheapest", "Cheapest first", key="coalesce(r.cost, 0)", descending=False,
          by_result=True),
    Order("largest", "Largest first", key="t.width * t.height"),
    Order("smallest", "Smallest first", key="t.width * t.height", descending=False),
)}
DEFAULT = ORDERS["newest"]


@dataclass(frozen=True)
class Position:
    """Where a card sits in a walk: its sort key (None for the id orders), task and
    result ids (0 for a placeholder)."""

    key: object
    task_id: int
    result_id: int

    def text(self):
        """The position as a cursor: ``<task id>.<result id>``, after ``<key>_`` when the
        order has a key (a cost is written so that it reads back exactly)."""
        ids = f"{self.task_id}.{self.result_id}"
        return ids if self.key is None else f"{_number(self.key)}_{ids}"


def _number(value):
    return str(value) if isinstance(value, int) else repr(float(value))


def parse_position(text, order=DEFAULT):
    """The :class:`Position` a cursor names for ``order``, or None when it is not one
    (a key where the order has none, or none where it needs one, numbers out of range)."""
    match = _CURSOR.fullmatch(text or "")
    if not match or (match[1] is None) != (order.key is None):
        return None
    task_id, result_id = int(match[2]), int(match[3])
    if task_id > INT64 or result_id > INT64:
        return None
    key = None
    if match[1] is not None:
        key = float(match[1]) if order.by_result else _integer(match[1])
        if key is None or not math.isfinite(key) or abs(key) > INT64:
            return None
    return Position(key, task_id, result_id)


def _integer(text):
    return int(text) if re.fullmatch(r"-?\d+", text) else None


def cards(conn, order, clauses, args, limit, *, reverse=False, sql_order=None,
          starred=False, task_ids=None):
    """Up to ``limit`` cards (dicts of :data:`CARD_COLUMNS`, plus ``sort_key``) that pass
    ``clauses`` (on ``tasks t`` and ``results r``), in ``order`` or ``sql_order``.

    Which table leads: the tasks, for the id and size orders; the results, for the cost
    orders and for starred images (few: their partial index). A results-led walk tests the
    task's filters in a subquery per result, not on the joined row: with them on the
    join, SQLite 3.40 first builds a Bloom filter over every task (0.4 s at a million).
    ``task_ids``, a short list of the only tasks that may appear (a rare search's
    matches), leads instead, and SQLite sorts what they hold.
    """
    clauses, args = list(clauses), list(args)
    if task_ids is not None:
        source = LISTED_FIRST if order.by_result or starred else TASKS_FIRST
        clauses.insert(0, "t.id IN (SELECT value FROM json_each(?))")
        args.insert(0, json.dumps(task_ids))
    elif order.by_result or starred:
        source = RESULTS_FIRST
        clauses, args = _per_result(clauses, args)
    else:
        source = TASKS_FIRST
    if starred:
        clauses.insert(0, "r.starred = 1")
    columns = CARD_COLUMNS + (f", {order.key} AS sort_key" if order.key else "")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    cur = conn.execute(f"SELECT {columns} FROM {source}{where}"
                       f" ORDER BY {sql_order or order.sql_order(reverse)} LIMIT ?",
                       [*args, limit])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _per_result(clauses, args):
    """The task filters among ``clauses`` as one subquery on the result's task (``f``),
    the clauses on the result itself (``r.``, the keyset's) left as they are."""
    own = [c for c in clauses if not _TASK_ALIAS.search(c)]
    tasks = [_TASK_ALIAS.sub("f.", c) for c in clauses if _TASK_ALIAS.search(c)]
    if not tasks:
        return own, args
    own_args, task_args, rest = [], [], list(args)
    for clause in clauses:
        taken, rest = rest[:clause.count("?")], rest[clause.count("?"):]
        (task_args if _TASK_ALIAS.search(clause) else own_args).extend(taken)
    exists = ("EXISTS (SELECT 1 FROM tasks f WHERE f.task_uuid = r.task_uuid AND "
              + " AND ".join(tasks) + ")")
    return [*own, exists], [*own_args, *task_args]
