"""The gallery's search language, pure: text → a small syntax tree → a plan of FTS5 and SQL.

What people type into a history's search box (A1111's image browsers, Lightroom, a web
search engine) is words, ``"a phrase"``, ``-word`` to exclude and ``OR`` between
alternatives, and a number that is a seed. Parsing it here, apart from the queries, keeps
every rule testable without a catalogue and makes sure nothing the user types reaches FTS5
as syntax: each word is re-quoted from the tokens FTS5's ``unicode61`` tokenizer keeps.

Grammar (``OR`` binds loosest, terms side by side are ANDed; no parentheses)::

    query := group ("OR" group)*
    group := term+
    term  := ["-"] [field ":"] (word | '"' phrase '"')
    field := prompt | negative | neg | label | seed

A bare word is a prefix (``light`` finds "lighthouse"); a phrase is exact. Without a field
a term looks in the prompt, the negative prompt and the label. A bare whole number also
matches an image's seed exactly. Anything that does not parse (an unclosed quote, a lone
``OR`` or ``-``, a field without a value) is searched as well as it can be, with a notice
saying what was done; parsing never raises.
"""

import re
from dataclasses import dataclass, field

MAX_TERMS = 32  # each term is one FTS5 phrase; a query of hundreds is not a search
MAX_SEED = 2**63 - 1  # Runware's seed range ends at the signed 64-bit maximum
COLUMNS = {"prompt": "positive_prompt", "negative": "negative_prompt",
           "neg": "negative_prompt", "label": "label"}

_WORD = re.compile(r"[^\W_]+")  # what FTS5's unicode61 tokenizer keeps as a token
_TOKEN = re.compile(r'(-?)(?:([A-Za-z]+):)?(?:"([^"]*)("?)|([^\s"]*))')
_DIGITS = re.compile(r"\d{1,19}")
# One text term of a plan, tested against a card's task through the index's rowid.
PROBE = ("EXISTS (SELECT 1 FROM tasks_fts WHERE tasks_fts MATCH ?"
         " AND tasks_fts.rowid = t.id)")


@dataclass(frozen=True)
class Term:
    """One searched thing: ``words`` (tokens) in ``column`` (None: every text column),
    an exact ``phrase`` or a prefix, and/or a ``seed``; ``negated`` excludes it."""

    words: tuple = ()
    phrase: bool = False
    column: str = None
    seed: int = None
    negated: bool = False

    def fts(self):
        """This term as one FTS5 phrase (its text part), or None when it has none."""
        if not self.words:
            return None
        text = '"' + " ".join(self.words) + '"' + ("" if self.phrase else "*")
        return f"{self.column} : {text}" if self.column else text


@dataclass(frozen=True)
class Query:
    """The parsed query: alternatives (``groups``), each a tuple of ANDed terms."""

    groups: tuple = ()
    notices: tuple = ()


def _term(negated, name, quoted, closed, bare, notices):
    """The :class:`Term` of one token's parts, or None (nothing searchable in it)."""
    column = None
    if name and name.lower() in COLUMNS:
        column = COLUMNS[name.lower()]
    elif name and name.lower() == "seed":
        raw = bare if quoted is None else quoted
        if _DIGITS.fullmatch(raw or "") and 0 <= int(raw) <= MAX_SEED:
            return Term(seed=int(raw), negated=bool(negated))
        notices.append(f"seed: needs a whole number, {raw!r} was left out")
        return None
    elif name:  # not a field ("http://…", "a:b"): the words of the whole token
        bare = f"{name}:{bare}" if quoted is None else f'{name}:"{quoted}"'
        quoted = None
    if quoted is not None:
        words = tuple(_WORD.findall(quoted))
        if words and not closed:
            notices.append(f'A closing quote was missing: searched for the phrase "{quoted}"')
        return Term(words, True, column, negated=bool(negated)) if words else None
    words = tuple(_WORD.findall(bare or ""))
    if not words:
        if negated or name:
            notices.append(f"{'-' if negated else ''}{name + ':' if name else ''}{bare} has"
                           " no word to search for and was left out")
        return None
    seed = None
    if column is None and _DIGITS.fullmatch(bare) and int(bare) <= MAX_SEED:
        seed = int(bare)
    return Term(words, False, column, seed, bool(negated))


def _tokens(text):
    """``(negated, field, quoted, closed, bare)`` for each token of ``text``."""
    position = 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        match = _TOKEN.match(text, position)
        if match.end() == position:  # a stray quote inside a word: skip one character
            position += 1
            continue
        position = match.end()
        yield match.groups()


def parse(text):
    """The :class:`Query` of ``text`` (never raises; what it could not use is a notice)."""
    notices, groups, current, dangling = [], [], [], False
    count = 0
    for negated, name, quoted, closed, bare in _tokens(text or ""):
        if bare == "OR" and not negated and not name and quoted is None:
            if not current:
                dangling = True
            else:
                groups.append(tuple(current))
                current = []
            continue
        term = _term(negated, name, quoted, closed, bare, notices)
        if term is None:
            continue
        count += 1
        if count > MAX_TERMS:
            notices.append(f"Only the first {MAX_TERMS} terms were searched for")
            break
        current.append(term)
    if current:
        groups.append(tuple(current))
    elif groups:
        dangling = True
    if dangling:
        notices.append("OR needs a term on each side; a lone OR was left out")
    return Query(tuple(groups), tuple(dict.fromkeys(notices)))


@dataclass
class Plan:
    """How to run a query.

    :ivar fts: an FTS5 expression whose matches include every matching task, newest
        first (None: no index can lead, every task is walked and ``clause`` decides).
    :ivar seeds: seeds whose tasks may match besides ``fts``'s (they lead too).
    :ivar clause: the exact test on a card (``tasks t``, ``results r``), with ``args``;
        None when ``fts`` alone is exact.
    """

    fts: str = None
    seeds: tuple = ()
    clause: str = None
    args: list = field(default_factory=list)
    notices: tuple = ()
    nothing: bool = False  # something was typed and nothing in it can be searched

    @property
    def walk_all(self):
        """True when no index can lead (a query of exclusions only)."""
        return self.fts is None and not self.seeds


def _group_fts(terms):
    """One group's FTS5 expression, numbers read as text; None without a positive word."""
    positive = [t.fts() for t in terms if not t.negated and t.words]
    negative = [t.fts() for t in terms if t.negated and t.words]
    if not positive:
        return None
    expression = " AND ".join(positive)
    if negative:
        expression = f"({expression}) NOT ({' OR '.join(negative)})"
    return expression


def _seed_clause(term, args):
    """A number or ``seed:`` term tested on the card: its seed, or (a number) its text.
    ``IS`` rather than ``=``: a card without an image has no seed, and NOT of a NULL
    would drop it from an exclusion."""
    if term.words:
        args += [term.fts(), term.seed]
        clause = f"({PROBE} OR r.seed IS ?)"
    else:
        args.append(term.seed)
        clause = "r.seed IS ?"
    return f"NOT {clause}" if term.negated else clause


def _group_clause(terms, args):
    """One group as SQL on a card: its plain terms in one probe, each seed term apart."""
    plain = [t for t in terms if t.seed is None]
    parts = []
    if any(not t.negated for t in plain):
        args.append(_group_fts(plain))
        parts.append(PROBE)
    elif plain:
        args.append(" OR ".join(t.fts() for t in plain))
        parts.append(f"NOT {PROBE}")
    parts += [_seed_clause(t, args) for t in terms if t.seed is not None]
    return "(" + " AND ".join(parts) + ")"


def plan(text):
    """The :class:`Plan` for what the user typed."""
    query = parse(text)
    if not query.groups:
        return Plan(notices=query.notices, nothing=True)
    leads = [_group_fts(g) for g in query.groups]
    seeds = tuple(dict.fromkeys(t.seed for g in query.groups for t in g
                                if t.seed is not None and not t.negated))
    led = all(fts is not None or any(t.seed is not None and not t.negated for t in g)
              for fts, g in zip(leads, query.groups))
    found = Plan(notices=query.notices)
    if led:
        found.fts = " OR ".join(f"({fts})" if len(leads) > 1 else fts
                                for fts in leads if fts is not None) or None
        found.seeds = seeds
    has_seed = any(t.seed is not None for g in query.groups for t in g)
    if has_seed or not led:
        found.clause = " OR ".join(_group_clause(g, found.args) for g in query.groups)
        found.clause = f"({found.clause})"
    return found


def describe(query):
    """A short reading of the parsed query for the page ("prompt has …"), or ''."""
    parts = []
    for group in query.groups:
        words = []
        for term in group:
            text = " ".join(term.words)
            text = f'"{text}"' if term.phrase else (f"{text}…" if text else "")
            if term.column:
                text = f"{[k for k, v in COLUMNS.items() if v == term.column][0]}:{text}"
            if term.seed is not None:
                text = f"seed {term.seed}" if not term.words else f"{text} or seed {term.seed}"
            words.append(("not " if term.negated else "") + text)
        parts.append(" and ".join(words))
    return " — or — ".join(parts)
