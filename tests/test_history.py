"""archive.browse: the gallery's keyset pages, its search and filters, and its counts."""

import sqlite3

import pytest
from hypothesis import given, settings, strategies as st

from archive import browse as history, search
from archive.catalogue import Catalogue
from tests.history_helpers import deliver, make_task


@pytest.fixture
def catalogue(tmp_path, migrated_copy):
    cat = Catalogue(migrated_copy(tmp_path / "catalogue.db"))
    cat.migrate()  # up to date already: a copy of the session's migrated catalogue
    return cat


def uuids(page):
    return [(c["task_uuid"], c["image_uuid"]) for c in page.cards]


def test_keyset_pages_do_not_overlap_and_end(catalogue):
    for i in range(7):
        task = make_task(catalogue, f"harbor number {i}", numberResults=2)
        deliver(catalogue, task, 10 * i, 10 * i + 1)
    make_task(catalogue, "still waiting")  # a placeholder card, newest
    seen, cursor, pages = [], None, 0
    while True:
        page = history.gallery(catalogue.conn, cursor=cursor, limit=4)
        seen += uuids(page)
        pages += 1
        if page.next is None:
            break
        cursor = page.next
    assert pages == 4 and len(seen) == 15 and len(set(seen)) == 15
    assert seen[0][1] is None  # the task without results comes first, as a placeholder
    ids = [c["task_id"] for c in history.gallery(catalogue.conn, limit=100).cards]
    assert ids == sorted(ids, reverse=True)


def test_a_malformed_cursor_is_refused(catalogue):
    deliver(catalogue, make_task(catalogue), 1)
    for cursor in ("x", "1.", "-1.2", "9" * 40 + ".1", "9223372036854775808.1"):
        with pytest.raises(ValueError):
            history.gallery(catalogue.conn, cursor=cursor)


def test_search_prefix_phrase_and_nothing(catalogue):
    a = make_task(catalogue, "a lighthouse at golden hour")
    b = make_task(catalogue, "golden retriever in the hour of fog")
    c = make_task(catalogue, "harbor", negativePrompt="lighthouse")  # negative prompts count
    for task in (a, b):
        deliver(catalogue, task, 1)

    def found(q):
        return {c["task_uuid"] for c in history.gallery(catalogue.conn, history.Filters(q=q)).cards}

    assert found("light") == {a, c}
    assert found("prompt:light") == {a}
    assert found("gold hour") == {a, b}
    assert found('"golden hour"') == {a}
    assert found("zebra") == set()
    for hostile in ('"', "*", "NEAR(", "-", "'", "AND OR NOT", '"" * ^ :', "light*)("):
        page = history.gallery(catalogue.conn, history.Filters(q=hostile))
        history.summary(catalogue.conn, history.Filters(q=hostile))
        assert isinstance(page.cards, list)


def test_search_walks_past_a_batch(catalogue, monkeypatch):
    monkeypatch.setattr(history, "SEARCH_BATCH", 1)
    wanted = [make_task(catalogue, f"lantern {i}") for i in range(5)]
    for i in range(12):
        make_task(catalogue, f"other {i}")
    filters = history.Filters(q="lantern", status="sending")
    assert [c["task_uuid"] for c in history.gallery(catalogue.conn, filters).cards] == wanted[::-1]


def test_filters(catalogue):
    old = make_task(catalogue, "old one", created_at="2025-01-10T12:00:00.000000Z",
                    provider="runware", width=512, height=768)
    new = make_task(catalogue, "new one")
    failed = make_task(catalogue, "broken", status="error")
    deliver(catalogue, old, 1)
    starred = deliver(catalogue, new, 2, 3)[1]
    catalogue.conn.execute("UPDATE results SET starred = 1 WHERE image_uuid = ?", (starred,))

    def tasks(**kw):
        return [c["task_uuid"] for c in history.gallery(catalogue.conn, history.Filters(**kw)).cards]

    assert tasks(provider="runware") == [old]
    assert tasks(size="512x768") == [old]
    assert tasks(status="error") == [failed]
    assert tasks(since="2025-01-10", until="2025-01-10") == [old]
    assert tasks(until="2025-01-09") == []
    assert old not in tasks(since="2025-01-11")
    assert tasks(starred=True) == [new]
    assert tasks(model="other:model@1") == []
    assert history.models(catalogue.conn) == ["runware:twinflow-z-image-turbo@0"]
    assert history.sizes(catalogue.conn) == ["512x768", "1024x1024"]


def test_filters_from_args_drop_what_does_not_parse():
    f = history.Filters.from_args({"since": "2025-13-01", "size": "big", "status": "weird",
                                   "provider": "sandbox", "starred": "1", "q": " fog "})
    assert (f.since, f.size, f.status, f.provider, f.starred, f.q) == (
        "", "", "", "sandbox", True, "fog")
    assert len(f.problems) == 3
    assert f.args() == {"q": "fog", "provider": "sandbox", "starred": "1"}


def test_summary_counts_what_the_filters_select(catalogue):
    a = make_task(catalogue, "lantern bazaar", numberResults=2)
    b = make_task(catalogue, "ice harbor", provider="runware")
    deliver(catalogue, a, 1, 2, cost=0.0006)
    starred = deliver(catalogue, b, 3, cost=0.0013)[0]
    make_task(catalogue, "pending")
    catalogue.conn.execute("UPDATE results SET starred = 1 WHERE image_uuid = ?", (starred,))
    conn = catalogue.conn
    assert history.summary(conn) == {"images": 3, "tasks": 3, "cost": pytest.approx(0.0025),
                                     "capped": False}
    assert history.summary(conn, history.Filters(q="lantern")) == {
        "images": 2, "tasks": 1, "cost": pytest.approx(0.0012), "capped": False}
    assert history.summary(conn, history.Filters(provider="runware"))["images"] == 1
    assert history.summary(conn, history.Filters(starred=True)) == {
        "images": 1, "tasks": 1, "cost": pytest.approx(0.0013), "capped": False}
    assert history.summary(conn, history.Filters(starred=True, q="lantern"))["images"] == 0


def test_a_filtered_summary_counts_the_newest_tasks_up_to_the_cap(catalogue, monkeypatch):
    monkeypatch.setattr(history, "SUMMARY_CAP", 3)
    tasks = [make_task(catalogue, f"fog harbor {i}", numberResults=2) for i in range(5)]
    for i, task in enumerate(tasks):
        deliver(catalogue, task, 1, 2, cost=0.001 * (i + 1))
    make_task(catalogue, "sunny field", provider="runware")
    conn = catalogue.conn
    newest = {"images": 6, "tasks": 3, "cost": pytest.approx(0.024), "capped": True}
    assert history.summary(conn, history.Filters(q="fog")) == newest
    assert history.summary(conn, history.Filters(provider="sandbox")) == newest
    assert history.summary(conn) == {"images": 10, "tasks": 6, "cost": pytest.approx(0.03),
                                     "capped": False}
    monkeypatch.setattr(history, "SUMMARY_CAP", 5)
    assert history.summary(conn, history.Filters(q="harb")) == {
        "images": 10, "tasks": 5, "cost": pytest.approx(0.03), "capped": False}


def test_the_unfiltered_summary_follows_inserts_and_deletes(catalogue):
    from archive import curation
    task = make_task(catalogue, numberResults=2)
    deliver(catalogue, task, 1, 2, cost=0.0006)
    other = make_task(catalogue)
    deliver(catalogue, other, 3, cost=0.0013)
    curation.delete_task(catalogue, task)
    assert history.summary(catalogue.conn) == {
        "images": 1, "tasks": 1, "cost": pytest.approx(0.0013), "capped": False}


@pytest.mark.parametrize("filters", [
    history.Filters(), history.Filters(model="m"), history.Filters(provider="sandbox"),
    history.Filters(size="512x512"), history.Filters(status="error"),
    history.Filters(since="2025-01-01", until="2025-02-01"),
])
def test_the_gallery_walk_uses_an_index_and_no_sort(catalogue, filters):
    clauses, args = history.task_clauses(filters)
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    plan = " | ".join(row[3] for row in catalogue.conn.execute(
        f"EXPLAIN QUERY PLAN SELECT {history.CARD_COLUMNS} FROM tasks t LEFT JOIN results r"
        f" ON r.task_uuid = t.task_uuid{where} ORDER BY t.id DESC, r.id DESC LIMIT 49", args))
    assert "TEMP B-TREE" not in plan, plan  # walked in order: stops after LIMIT rows
    if filters.active:
        assert plan.startswith("SEARCH t USING"), plan


def test_deliveries_filter_by_verdict_and_reason(catalogue):
    from archive import delivery_log
    task = make_task(catalogue)
    deliver(catalogue, task, 1)
    catalogue.log_rejection(source="webhook", reason="invalid token", status_code=403,
                            task_uuid=task)
    catalogue.log_rejection(source="webhook", reason="malformed JSON: Expecting value",
                            status_code=400, task_uuid=task)
    conn = catalogue.conn
    rows, nxt = delivery_log.deliveries(conn, verdict="rejected")
    assert [r["reason"] for r in rows] == ["malformed JSON: Expecting value", "invalid token"]
    assert nxt is None
    assert [r["status_code"] for r in delivery_log.deliveries(conn, reason="malformed JSON")[0]] == [400]
    assert delivery_log.deliveries(conn, reason="%")[0] == []
    assert dict(delivery_log.reason_kinds(conn)) == {"malformed JSON": 1, "invalid token": 1}
    first, nxt = delivery_log.deliveries(conn, limit=2)
    rest, _ = delivery_log.deliveries(conn, before=nxt, limit=2)
    assert len(first) == 2 and [r["verdict"] for r in rest] == ["accepted"]


def test_sqlite_has_fts5():
    assert sqlite3.connect(":memory:").execute(
        "SELECT sqlite_compileoption_used('ENABLE_FTS5')").fetchone()[0] == 1


@pytest.fixture(scope="module")
def searchable(tmp_path_factory):
    cat = Catalogue(tmp_path_factory.mktemp("fts") / "catalogue.db")
    cat.migrate()
    make_task(cat, "a lighthouse at dawn")
    return cat


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_is_a_valid_search(searchable, text):
    plan = search.plan(text)
    if plan.fts is not None:
        searchable.conn.execute("SELECT count(*) FROM tasks_fts WHERE tasks_fts MATCH ?",
                                (plan.fts,)).fetchone()
    history.gallery(searchable.conn, history.Filters(q=text))
