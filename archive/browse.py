"""The queries behind the browsable history (no Flask): the gallery, search and its filters.

The gallery walks *tasks* newest first (their ``id``) and, inside each task, its results
newest first, so a page is one indexed walk with no OFFSET: the cursor is the last card's
``(task id, result id)``. A task that has no result yet (still running, or failed) shows as
one placeholder card in its place. Every filter is either a task column with its own index
(``model``, ``provider``, ``status``, ``width, height``), a date range turned into an id
range, the prompt index ``tasks_fts``, or the starred results' partial index, so the walk
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
from archive import states

PAGE_SIZE = 48
SEARCH_BATCH = 256  # most matches read at the first look at the search index; grows ×4
SUMMARY_CAP = 1000  # tasks a filtered view counts; past that the page says "more than"
STATUSES = states.TASK_STATES
PROVIDERS = ("sandbox", "runware")
# Slack around a date bound when it is turned into an id bound: ``created_at`` is taken
# just before the insert, so ids and times may disagree by the length of a busy wait.
ID_BOUND_SLACK = timedelta(minutes=1)

_WORD = re.compile(r"[^\W_]+")  # what FTS5's unicode61 tokenizer keeps as a token
_PHRASE = re.compile(r'"([^"]*)"?')
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")

# With starred results as the outer loop, test each against the set of matches (the
# unary + keeps SQLite from probing the whole match list once per starred row: 9 s → 20 ms).
STARRED_MATCH = "+t.id IN (SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH ?)"
CARD_COLUMNS = (
    "t.id AS task_id, t.task_uuid, t.created_at, t.positive_prompt, t.model, t.width,"
    " t.height, t.status, t.provider, t.number_results, t.results_received,"
    " t.parent_task_uuid, t.rerun_mode, t.error_code, t.label, r.id AS result_id,"
    " r.image_uuid, r.seed, r.cost, r.archive_state, r.sha256, r.file_ext, r.starred,"
    " r.img_width, r.img_height"
)


def fts_query(text):
    """A safe FTS5 query for ``text``: bare words become prefix terms (``word*``) and
    ``"quoted text"`` a phrase, all ANDed and limited to the positive prompt; None when
    ``text`` has no word in it.

    Only tokens the tokenizer would keep survive, each re-quoted, so no character the
    user types (``"``, ``*``, ``-``, ``NEAR(``, ``:``) can reach FTS5 as syntax.
    """
    terms = []
    for phrase in _PHRASE.findall(text):
        words = _WORD.findall(phrase)
        if words:
            terms.append('"' + " ".join(words) + '"')
    for word in _WORD.findall(_PHRASE.sub(" ", text)):
        terms.append(f'"{word}"*')
    if not terms:
        return None
    return " AND ".join(f"positive_prompt : {term}" for term in terms)


@dataclass(frozen=True)
class Filters:
    """What the gallery shows; every field empty means everything."""

    q: str = ""
    since: str = ""  # YYYY-MM-DD, inclusive, UTC
    until: str = ""  # YYYY-MM-DD, inclusive, UTC
    model: str = ""
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
    for name in ("model", "status", "provider"):
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


def search_ids(conn, fts, *, below=None, limit=256):
    """Ids of the tasks ``fts`` matches, newest first, at most ``below`` (FTS5 reads its
    doclists in rowid order, so this is a short read however common the words are)."""
    sql = "SELECT rowid FROM tasks_fts WHERE tasks_fts MATCH ?"
    args = [fts]
    if below is not None:
        sql += " AND rowid <= ?"
        args.append(below)
    sql += " ORDER BY rowid DESC LIMIT ?"
    return [row[0] for row in conn.execute(sql, [*args, limit])]


@dataclass
class Page:
    """One page of gallery cards and the cursor of the next one (None on the last)."""

    cards: list
    next: str = None
    search: str = None  # the FTS5 query actually run, for the curious


def parse_cursor(text):
    """``"<task id>.<result id>"`` → ``(task_id, result_id)``; None if malformed."""
    match = re.fullmatch(r"(\d{1,18})\.(\d{1,18})", text or "")
    return (int(match[1]), int(match[2])) if match else None


def _page(conn, clauses, args, limit, starred=False):
    """The cards that pass ``clauses``, newest first, at most ``limit``."""
    if starred:
        # Few results are starred: start from them (a partial index), then sort.
        source = "results r CROSS JOIN tasks t ON t.task_uuid = r.task_uuid"
        clauses = ["r.starred = 1", *clauses]
    else:
        source = "tasks t LEFT JOIN results r ON r.task_uuid = t.task_uuid"
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    cur = conn.execute(f"SELECT {CARD_COLUMNS} FROM {source}{where}"
                       " ORDER BY t.id DESC, r.id DESC LIMIT ?", [*args, limit])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def _search_page(conn, fts, clauses, args, limit, below):
    """:func:`_page` over the tasks ``fts`` matches, read from the index in growing
    batches (newest first) until the page is full or the matches run out. The first batch
    is no larger than the page: each match is a card at least, and when its words are
    rare together the index walks far for each one."""
    cards, batch = [], min(SEARCH_BATCH, limit)
    while len(cards) < limit:
        ids = search_ids(conn, fts, below=below, limit=batch)
        if not ids:
            break
        cards += _page(conn, ["t.id IN (SELECT value FROM json_each(?))", *clauses],
                       [json.dumps(ids), *args], limit - len(cards))
        if len(ids) < batch:
            break
        below, batch = ids[-1] - 1, min(batch * 4, 16384)
    return cards


def gallery(conn, filters=Filters(), *, cursor=None, limit=None):
    """One page of cards (dicts of :data:`CARD_COLUMNS`), newest first.

    :param cursor: the ``next`` of the previous page (a string), or None for the first.
    :param limit: cards per page, :data:`PAGE_SIZE` by default.
    """
    limit = limit or PAGE_SIZE
    fts = fts_query(filters.q) if filters.q else None
    if filters.q and fts is None:
        return Page([], None, None)  # words were asked for, none can be searched
    clauses, args = task_clauses(filters)
    position = parse_cursor(cursor) if cursor else None
    if position:
        clauses.append("t.id <= ? AND (t.id < ? OR r.id < ?)")
        args += [position[0], position[0], position[1]]
    if fts is None:
        cards = _page(conn, clauses, args, limit + 1, filters.starred)
    elif filters.starred:
        clauses.append(STARRED_MATCH)
        cards = _page(conn, clauses, [*args, fts], limit + 1, starred=True)
    else:
        below = position[0] if position else None
        cards = _search_page(conn, fts, clauses, args, limit + 1, below)
    nxt = None
    if len(cards) > limit:
        cards = cards[:limit]
        nxt = f"{cards[-1]['task_id']}.{cards[-1]['result_id'] or 0}"
    return Page(cards, nxt, fts)


def summary(conn, filters=Filters()):
    """``{"images", "tasks", "cost", "capped"}`` of what the filters select (all pages).

    Everything: exact, from running totals (m010's ``task_totals``, m008's ``cost_totals``).
    Starred: exact, from the starred results' partial index (stars are picked by hand:
    thousands, not millions). Any other filter counts the newest :data:`SUMMARY_CAP` tasks
    it selects, along the gallery's own walk, from their ``results_received`` and ``cost``;
    ``capped`` is True when more tasks match than were counted.
    """
    fts = fts_query(filters.q) if filters.q else None
    if filters.q and fts is None:
        return _summary(0, 0, 0.0)
    if not filters.active:
        return _summary(*conn.execute(
            "SELECT total(results), (SELECT tasks FROM task_totals), total(cost)"
            " FROM cost_totals").fetchone())
    clauses, args = task_clauses(filters)
    if filters.starred:
        return _starred(conn, clauses, args, fts)
    rows = _newest(conn, clauses, args, fts, SUMMARY_CAP + 1)  # one more: are there more?
    counted = rows[:SUMMARY_CAP]
    return _summary(sum(r[0] for r in counted), len(counted), sum(r[1] or 0 for r in counted),
                    len(rows) > SUMMARY_CAP)


def _newest(conn, clauses, args, fts, limit):
    """``[(results_received, cost)]`` of the newest ``limit`` tasks that pass ``clauses``
    (on ``tasks t``) and match ``fts``, newest first."""
    columns = "t.results_received, t.cost"
    if fts is None:
        return conn.execute(f"SELECT {columns} FROM tasks t WHERE {' AND '.join(clauses)}"
                            " ORDER BY t.id DESC LIMIT ?", [*args, limit]).fetchall()
    if not clauses:  # the index alone says which; read their rows in rowid order
        return conn.execute(
            f"SELECT {columns} FROM tasks t WHERE t.id IN (SELECT rowid FROM tasks_fts"
            " WHERE tasks_fts MATCH ? ORDER BY rowid DESC LIMIT ?) ORDER BY t.id DESC",
            [fts, limit]).fetchall()
    return conn.execute(  # the search index leads, newest first, as in the gallery
        f"SELECT {columns} FROM tasks_fts JOIN tasks t ON t.id = tasks_fts.rowid"
        f" WHERE tasks_fts MATCH ? AND {' AND '.join(clauses)}"
        " ORDER BY tasks_fts.rowid DESC LIMIT ?", [fts, *args, limit]).fetchall()


def _starred(conn, clauses, args, fts):
    """:func:`summary` of starred results (``clauses`` on their tasks ``t``)."""
    source = "results r"
    if fts is not None:
        clauses, args = [*clauses, STARRED_MATCH], [*args, fts]
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

