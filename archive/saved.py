"""Saved searches (no Flask): a gallery query and its filters kept under a name.

A saved search is the gallery's own query string (``q=fog&label=client-a``), so opening it
is a link and whatever the gallery learns to filter by is saved without a change here.
Names are unique: saving under a name that exists replaces what it holds.
"""

from urllib.parse import urlencode

from archive.records import utcnow

MAX_NAME = 80
MAX_SAVED = 200  # a toolbar list, not a database of queries


def query_of(args):
    """The query string a saved search keeps for ``args`` (sorted, so equal filters
    are equal text)."""
    return urlencode(sorted(args.items()))


def list_saved(conn):
    """``[{"id", "name", "query"}]``, by name."""
    return [{"id": row[0], "name": row[1], "query": row[2]} for row in conn.execute(
        "SELECT id, name, query FROM saved_searches ORDER BY name COLLATE NOCASE, id")]


def save(catalogue, name, args):
    """Keep ``args`` (the gallery's filters as query arguments) under ``name``; returns
    the row's id.

    :raises ValueError: a name that is empty or too long, no filter at all, or the list full.
    """
    name = " ".join((name or "").split())
    if not name or len(name) > MAX_NAME:
        raise ValueError(f"a saved search needs a name of 1 to {MAX_NAME} characters")
    if not args:
        raise ValueError("there is nothing to save: search or filter first")
    query = query_of(args)
    with catalogue.write() as conn:
        count = conn.execute("SELECT count(*) FROM saved_searches WHERE name != ?",
                             (name,)).fetchone()[0]
        if count >= MAX_SAVED:
            raise ValueError(f"at most {MAX_SAVED} searches can be saved; delete one first")
        return conn.execute(
            "INSERT INTO saved_searches (name, query, created_at) VALUES (?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET query = excluded.query RETURNING id",
            (name, query, utcnow())).fetchone()[0]


def delete(catalogue, saved_id):
    """Delete one saved search; returns its name, or None when there was none."""
    with catalogue.write() as conn:
        row = conn.execute("DELETE FROM saved_searches WHERE id = ? RETURNING name",
                           (saved_id,)).fetchone()
    return row[0] if row else None
