"""The queries behind the browsable history (no Flask): the gallery, search and its filters.

The gallery walks *tasks* newest first (their ``id``) and, inside each task, its results
newest first, so a page is one indexed walk with no OFFSET: the cursor is the last card's
``(task id, result id)``. A task that has no result yet (still running, or failed) shows as
one placeholder card in its place. Every filter is either a task column with its own index
(``model``, ``provider``, ``status``, ``width, height``), a date range turned into an id
range, the search index ``tasks_fts`` (prompt, negative prompt, label) and the seeds'
index (:mod:`archive.search` parses the query), or the starred results' partial index, so the walk
stays short with a million results (see ``bench/history.py`` for the measurements). The line
above the cards (images, tasks, cost) reads running totals, or counts at most
:data:`SUMMARY_CAP` tasks of a filtered view (:func:`summary`, ``bench/catalogue_scale.py``).

Lineage (parent, children, seed variants) and delete live in :mod:`archive.lineage`, the
delivery log in :mod:`archive.delivery_log`.
"""

import json
import re
from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta

from archive.parsing import parse_day
from archive import ordering, search, states

PAGE_SIZE = 48
SEARCH_BATCH = 256  # most matches read at the first look at the search index; grows ×4
SUMMARY_CAP = 1000  # tasks a filtered view counts; past that the page says "more than"
STATUSES = states.TASK_STATES
PROVIDERS = ("sandbox", "runware")
# Slack around a date bound when it is turned into an id bound: ``created_at`` is taken
# just before the insert, so ids and times may disagree by the length of a busy wait.
ID_BOUND_SLACK = timedelta(minutes=1)

_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")

# With starred results as the outer loop, test each against the set of matches (the
# unary + keeps SQLite from probing the whole match list once per starred row: 9 s → 20 ms).
STARRED_MATCH = "+t.id IN (SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH ?)"
CARD_COLUMNS = ordering.CARD_COLUMNS
MATCH_LIST_CAP = 4096  # matches a sorted search reads and sorts itself (_walk)


@dataclass(frozen=True)
class Filters:
    """What the gallery shows; every field empty means everything."""

    q: str = ""
    since: str = ""  # YYYY-MM-DD, inclusive, UTC
    until: str = ""  # YYYY-MM-DD, inclusive, UTC
    model: str = ""
    label: str = ""
    size: str = ""  # "1024x768"
    status: str = ""
    provider: str = ""
    starred: bool = False
    problems: tuple = field(default=(), compare=False)

    @classmethod
    def from_args(cls, args):
        """Filters from query arguments (a mapping of strings); a value that does not
        parse is dropped and named in ``problems``."""
        values, problems = {}, []
        for f in fields(cls):
            if f.name == "problems":
                continue
            raw = (args.get(f.name) or "").strip()
            if f.name == "starred":
                values["starred"] = raw in ("1", "on", "true", "yes")
            elif raw and _valid(f.name, raw):
                values[f.name] = raw
            elif raw:
                problems.append(f"{f.name}: {raw!r} is not valid")
        return cls(**values, problems=tuple(problems))

    @property
    def active(self):
        """True when anything is filtered."""
        return any(getattr(self, f.name) for f in fields(self) if f.name != "problems")

    def args(self):
        """The filters as query arguments (for links), empty ones left out."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "problems" and value:
                out[f.name] = "1" if value is True else value
        return out


def _valid(name, raw):
    if name in ("since", "until"):
        try:
            parse_day(raw)
        except ValueError:
            return False
        return True
    if name == "size":
        return bool(_SIZE.match(raw))
    if name == "status":
        return raw in STATUSES
    if name == "provider":
        return raw in PROVIDERS
    if name == "q":
        return len(raw) <= 500
    return len(raw) <= 200


def _stamp(day, shift=timedelta(0)):
    """Midnight UTC of ``day`` (YYYY-MM-DD) plus ``shift``, as the catalogue writes times.

    A filter clamps rather than refuses at the calendar's ends: since 0001-01-01 (less
    the slack) and until 9999-12-31 (plus a day) mean the first and the last moment
    there is, so they filter nothing out. ``isoformat`` pads the year to four digits,
    which ``strftime("%Y")`` does not, and the bounds are compared as text.
    """
    try:
        moment = datetime.combine(date.fromisoformat(day), time()) + shift
    except OverflowError:
        moment = datetime.min if shift < timedelta(0) else datetime.max
    return moment.isoformat(timespec="microseconds") + "Z"


def task_clauses(filters):
    """``(clauses, args)`` on ``tasks t`` for every task-level filter except the search."""
    clauses, args = [], []
    for name in ("model", "label", "status", "provider"):
        value = getattr(filters, name)
        if value:
            clauses.append(f"t.{name} = ?")
            args.append(value)
    if filters.size:
        width, height = _SIZE.match(filters.size).groups()
        clauses.append("t.width = ? AND t.height = ?")
        args += [int(width), int(height)]
    if filters.since:
        # An id bound the rowid walk can stop at, then the exact test on the time.
        clauses.append("t.id >= (SELECT id FROM tasks WHERE created_at >= ?"
                       " ORDER BY created_at LIMIT 1) AND t.created_at >= ?")
        args += [_stamp(filters.since, -ID_BOUND_SLACK), _stamp(filters.since)]
    if filters.until:
        end = timedelta(days=1)
        clauses.append("t.id <= (SELECT id FROM tasks WHERE created_at < ?"
                       " ORDER BY created_at DESC LIMIT 1) AND t.created_at < ?")
        args += [_stamp(filters.until, end + ID_BOUND_SLACK), _stamp(filters.until, end)]
    return clauses, args


def search_ids(conn, plan, *, bound=None, limit=256, descending=True):
    """Ids of the tasks that may match ``plan`` (a :class:`archive.search.Plan`), newest
    first (oldest first unless ``descending``), from ``bound`` on: those its FTS5
    expression matches (FTS5 reads its doclists in rowid order, so this is a short read
    however common the words are) and those with an image of one of its seeds (the
    ``results_seed`` index), merged."""
    found = set()
    way, op = ("DESC", "<=") if descending else ("ASC", ">=")
    where = ("", []) if bound is None else (f" AND rowid {op} ?", [bound])
    if plan.fts is not None:
        found.update(row[0] for row in conn.execute(
            f"SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH ?{where[0]}"
            f" ORDER BY rowid {way} LIMIT ?", [plan.fts, *where[1], limit]))
    if plan.seeds:
        marks = ", ".join("?" for _ in plan.seeds)
        found.update(row[0] for row in conn.execute(
            "SELECT DISTINCT t.id FROM results r JOIN tasks t ON t.task_uuid = r.task_uuid"
            f" WHERE r.seed IN ({marks}){where[0].replace('rowid', 't.id')}"
            f" ORDER BY t.id {way} LIMIT ?", [*plan.seeds, *where[1], limit]))
    return sorted(found, reverse=descending)[:limit]


@dataclass
class Page:
    """One page of gallery cards, with the cursors of the pages after (``next``) and
    before it (``previous``): None where there is none."""

    cards: list
    next: str = None
    search: str = None  # the FTS5 query actually run, for the curious
    notices: tuple = ()  # what the search could not use, said in words
    previous: str = None


def parse_cursor(text, order=ordering.DEFAULT):
    """A cursor's :class:`archive.ordering.Position` for ``order``; None if malformed."""
    return ordering.parse_position(text, order)


def _search_page(conn, plan, order, clauses, args, limit, bound, reverse):
    """The cards of the tasks ``plan`` may match, for the id orders, read from the
    indexes in growing batches (in the walk's direction) until the page is full or the
    matches run out, each card then tested by the plan's exact clause if it has one. The
    first batch is no larger than the page: each match is a card at least, and when its
    words are rare together the index walks far for each one."""
    if plan.clause:
        clauses, args = [*clauses, plan.clause], [*args, *plan.args]
    found, batch = [], min(SEARCH_BATCH, limit)
    descending = order.descending != reverse
    while len(found) < limit:
        ids = search_ids(conn, plan, bound=bound, limit=batch, descending=descending)
        if not ids:
            break
        found += ordering.cards(conn, order, clauses, args, limit - len(found),
                                reverse=reverse, task_ids=ids)
        if len(ids) < batch:
            break
        bound, batch = ids[-1] + (-1 if descending else 1), min(batch * 4, 16384)
    return found


def match_clause(plan):
    """``(clause, args)`` testing a card (``t``, ``r``) against ``plan`` on its own, for
    walks another index leads (starred, the sort orders) or none can (exclusions only)."""
    if plan.clause:
        return plan.clause, list(plan.args)
    return STARRED_MATCH, [plan.fts]


def plan_for(filters):
    """The search plan of ``filters.q``, or None when nothing is searched for."""
    return search.plan(filters.q) if filters.q else None


def _walk(conn, filters, plan, order, position, reverse, limit):
    """Up to ``limit`` cards that pass ``filters`` (and match ``plan``), after
    ``position`` in ``order`` (before it, nearest first, with ``reverse``)."""
    clauses, args = task_clauses(filters)
    if plan and not plan.walk_all and order.key is None and not filters.starred:
        if position:
            clause, more, _ = order.parts(position, reverse)[0]
            clauses, args = [*clauses, clause], [*args, *more]
        bound = position.task_id if position else None
        return _search_page(conn, plan, order, clauses, args, limit, bound, reverse)
    listed = None
    if plan and not plan.walk_all:
        # A rare search's matches are sorted as they are; a common one's are a set each
        # card of the walk is tested against.
        listed = search_ids(conn, plan, limit=MATCH_LIST_CAP + 1)
        listed = listed if len(listed) <= MATCH_LIST_CAP else None
    if plan and (listed is None or plan.clause):
        clause, more = match_clause(plan)
        clauses, args = [*clauses, clause], [*args, *more]
    found = []
    for clause, more, sql_order in (order.parts(position, reverse) if position
                                    else [(None, [], None)]):
        found += ordering.cards(
            conn, order, [*clauses, clause] if clause else clauses, [*args, *more],
            limit - len(found), reverse=reverse, sql_order=sql_order,
            starred=filters.starred, task_ids=listed)
        if len(found) >= limit:
            break
    return found


def gallery(conn, filters=Filters(), *, cursor=None, before=None, last=False,
            order=ordering.DEFAULT, limit=None, plan=None):
    """One page of cards (dicts of :data:`CARD_COLUMNS`) in ``order``.

    :param cursor: the page after this position (a page's ``next``); None for the first.
    :param before: the page before this position (a page's ``previous``).
    :param last: the last page.
    :param limit: cards per page, :data:`PAGE_SIZE` by default.
    :param plan: the search plan to run instead of ``filters.q``'s (the benchmark's
        baseline), else :func:`plan_for`.
    :raises ValueError: ``cursor`` or ``before`` is no position of ``order``.
    """
    limit = limit or PAGE_SIZE
    plan = plan or plan_for(filters)
    if plan and plan.nothing:
        return Page([], None, None, plan.notices)  # words were asked for, none can be searched
    mark = before or cursor
    position = parse_cursor(mark, order) if mark else None
    if mark and position is None:
        raise ValueError(f"{mark!r} is not a position of the {order.name} order")
    reverse = bool(before) or last
    cards = _walk(conn, filters, plan, order, position, reverse, limit + 1)
    more, cards = len(cards) > limit, cards[:limit]
    if reverse:
        cards.reverse()
    page = Page(cards, None, plan and plan.fts, plan.notices if plan else ())
    if cards:
        # The way walked says by the one card more whether there is another page; the way
        # back has the page the position came from (unless it was deleted meanwhile: then
        # that page says it is empty and links to the first).
        behind = more if reverse else bool(position)
        ahead = bool(before) or (more and not reverse)
        page.previous = order.position(cards[0]).text() if behind else None
        page.next = order.position(cards[-1]).text() if ahead else None
    return page


def summary(conn, filters=Filters()):
    """``{"images", "tasks", "cost", "capped"}`` of what the filters select (all pages).

    Everything: exact, from running totals (m010's ``task_totals``, m008's ``cost_totals``).
    Starred: exact, from the starred results' partial index (stars are picked by hand:
    thousands, not millions). Any other filter counts the newest :data:`SUMMARY_CAP` tasks
    it selects, along the gallery's own walk, from their ``results_received`` and ``cost``
    (a search that names a seed picks images, not tasks: it counts the cards it selects);
    ``capped`` is True when more tasks match than were counted.
    """
    plan = plan_for(filters)
    if plan and plan.nothing:
        return _summary(0, 0, 0.0)
    if not filters.active:
        return _summary(*conn.execute(
            "SELECT total(results), (SELECT tasks FROM task_totals), total(cost)"
            " FROM cost_totals").fetchone())
    clauses, args = task_clauses(filters)
    if filters.starred:
        return _starred(conn, clauses, args, plan)
    if plan and "r.seed" in (plan.clause or ""):
        return _card_summary(conn, filters, plan)
    rows = _newest(conn, clauses, args, plan, SUMMARY_CAP + 1)  # one more: are there more?
    counted = rows[:SUMMARY_CAP]
    return _summary(sum(r[0] for r in counted), len(counted), sum(r[1] or 0 for r in counted),
                    len(rows) > SUMMARY_CAP)


def _card_summary(conn, filters, plan):
    """:func:`summary` of a search that tests images (a seed): the first cards of the
    gallery's own walk, as many as :data:`SUMMARY_CAP` tasks hold at most."""
    cards = gallery(conn, filters, limit=SUMMARY_CAP * 4, plan=plan).cards
    tasks = list(dict.fromkeys(c["task_id"] for c in cards))
    capped = len(tasks) > SUMMARY_CAP or len(cards) == SUMMARY_CAP * 4
    kept = [c for c in cards if c["task_id"] in set(tasks[:SUMMARY_CAP])]
    return _summary(sum(1 for c in kept if c["image_uuid"]), min(len(tasks), SUMMARY_CAP),
                    sum(c["cost"] or 0 for c in kept), capped)


def _newest(conn, clauses, args, plan, limit):
    """``[(results_received, cost)]`` of the newest ``limit`` tasks that pass ``clauses``
    (on ``tasks t``) and match ``plan`` (a search without seeds), newest first."""
    columns = "t.results_received, t.cost"
    if plan is not None and (plan.walk_all or plan.clause):
        clauses, args, plan = [*clauses, plan.clause], [*args, *plan.args], None
    if plan is None:
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
        return conn.execute(f"SELECT {columns} FROM tasks t{where}"
                            " ORDER BY t.id DESC LIMIT ?", [*args, limit]).fetchall()
    if not clauses:  # the index alone says which; read their rows in rowid order
        return conn.execute(
            f"SELECT {columns} FROM tasks t WHERE t.id IN (SELECT rowid FROM tasks_fts"
            " WHERE tasks_fts MATCH ? ORDER BY rowid DESC LIMIT ?) ORDER BY t.id DESC",
            [plan.fts, limit]).fetchall()
    return conn.execute(  # the search index leads, newest first, as in the gallery
        f"SELECT {columns} FROM tasks_fts JOIN tasks t ON t.id = tasks_fts.rowid"
        f" WHERE tasks_fts MATCH ? AND {' AND '.join(clauses)}"
        " ORDER BY tasks_fts.rowid DESC LIMIT ?", [plan.fts, *args, limit]).fetchall()


def _starred(conn, clauses, args, plan):
    """:func:`summary` of starred results (``clauses`` on their tasks ``t``)."""
    source = "results r"
    if plan is not None:
        clause, more = match_clause(plan)
        clauses, args = [*clauses, clause], [*args, *more]
    if clauses:
        source += " CROSS JOIN tasks t ON t.task_uuid = r.task_uuid"
    where = " AND ".join(["r.starred = 1", *clauses])
    return _summary(*conn.execute(
        f"SELECT count(*), count(DISTINCT r.task_uuid), total(r.cost) FROM {source}"
        f" WHERE {where}", args).fetchone())


def _summary(images, tasks, cost, capped=False):
    return {"images": int(images or 0), "tasks": tasks or 0, "cost": round(cost or 0.0, 10),
            "capped": capped}


def models(conn, limit=50):
    """The models in the catalogue, found by skipping along the ``model`` index."""
    return [row[0] for row in conn.execute(
        "WITH RECURSIVE m(x) AS (SELECT min(model) FROM tasks UNION ALL"
        " SELECT (SELECT min(model) FROM tasks WHERE model > m.x) FROM m"
        " WHERE m.x IS NOT NULL LIMIT ?) SELECT x FROM m WHERE x IS NOT NULL", (limit,)
    )]


def sizes(conn, limit=50):
    """The ``"WxH"`` sizes in the catalogue, skipping along the ``(width, height)`` index
    (two ``min()`` look-ups per size instead of a scan)."""
    found = []
    width = conn.execute("SELECT min(width) FROM tasks").fetchone()[0]
    while width is not None and len(found) < limit:
        height = conn.execute("SELECT min(height) FROM tasks WHERE width = ?",
                              (width,)).fetchone()[0]
        while height is not None and len(found) < limit:
            found.append(f"{width}x{height}")
            height = conn.execute("SELECT min(height) FROM tasks WHERE width = ?"
                                  " AND height > ?", (width, height)).fetchone()[0]
        width = conn.execute("SELECT min(width) FROM tasks WHERE width > ?",
                             (width,)).fetchone()[0]
    return found



def labels(conn, limit=100):
    """The labels tasks carry, found by skipping along the ``tasks_label`` index (m026):
    one look-up per label, however many tasks carry it."""
    return [row[0] for row in conn.execute(
        "WITH RECURSIVE l(x) AS (SELECT min(label) FROM tasks WHERE label > ''"
        " UNION ALL SELECT (SELECT min(label) FROM tasks WHERE label > l.x) FROM l"
        " WHERE l.x IS NOT NULL LIMIT ?) SELECT x FROM l WHERE x IS NOT NULL", (limit,)
    )]
