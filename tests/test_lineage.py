"""archive.lineage: relatives, seed variants, the timeline; archive.curation: star and delete."""

import os

import pytest

from archive import curation, lineage
from archive.catalogue import Catalogue
from archive.filestore import FileStore
from tests.history_helpers import archive, deliver, make_task, picture


@pytest.fixture
def catalogue(tmp_path, migrated_copy):
    cat = Catalogue(migrated_copy(tmp_path / "catalogue.db"))
    cat.migrate()  # up to date already: a copy of the session's migrated catalogue
    return cat


def test_family_children_and_seed_variants(catalogue):
    root = make_task(catalogue, "a harbor", seed=1)
    exact = make_task(catalogue, "a harbor", seed=1, parent=root, rerun_mode="exact")
    other_seed = make_task(catalogue, "a harbor", seed=2, parent=root, rerun_mode="new-seed")
    edited = make_task(catalogue, "a harbor", seed=1, steps=8, parent=root, rerun_mode="edit")
    grandchild = make_task(catalogue, "a harbor", seed=3, parent=exact, rerun_mode="new-seed")
    make_task(catalogue, "a harbor", seed=4)  # same request, but not of this family
    conn = catalogue.conn
    assert [t["task_uuid"] for t in lineage.children(conn, root)] == [exact, other_seed, edited]
    assert lineage.root_of(conn, grandchild) == root
    assert len(lineage.family(conn, grandchild)) == 5
    task = catalogue.get_task(other_seed)
    assert [t["task_uuid"] for t in lineage.seed_variants(conn, task)] == [exact, grandchild]


def test_changes_between_requests():
    parent = {"taskUUID": "a", "positivePrompt": "x y", "seed": 1, "steps": 4,
              "webhookURL": "http://h/webhooks/runware/a"}
    child = {"taskUUID": "b", "positivePrompt": "x y", "seed": 2, "steps": 8, "CFGScale": 2}
    assert lineage.changes(parent, child) == [
        ("CFGScale", None, 2), ("seed", 1, 2), ("steps", 4, 8)]


def test_timeline_is_in_time_order(catalogue):
    task_uuid = make_task(catalogue)
    catalogue.mark_acknowledged(task_uuid, ack={"data": []})
    deliver(catalogue, task_uuid, 5)
    catalogue.log_rejection(source="webhook", reason="invalid token", status_code=403,
                            task_uuid=task_uuid)
    task = catalogue.get_task(task_uuid)
    events = lineage.timeline(task, catalogue.deliveries(task_uuid=task_uuid))
    assert [e.what for e in events] == [
        "recorded", "acknowledged by the provider", "delivery accepted", "complete",
        "delivery rejected"]
    assert "invalid token" in events[-1].detail


def test_star_and_unstar(catalogue):
    image_uuid = deliver(catalogue, make_task(catalogue), 1)[0]
    assert curation.set_starred(catalogue, image_uuid, True)
    assert catalogue.conn.execute("SELECT starred FROM results").fetchone()[0] == 1
    assert curation.set_starred(catalogue, image_uuid, False)
    assert catalogue.conn.execute("SELECT starred FROM results").fetchone()[0] == 0
    assert not curation.set_starred(catalogue, "no-such-image", True)


def test_delete_keeps_shared_files_children_and_the_log(catalogue, tmp_path):
    store = FileStore(tmp_path)
    parent = make_task(catalogue, numberResults=2)
    child = make_task(catalogue, parent=parent, rerun_mode="exact")
    shared_bytes, own_bytes = picture(1), picture(2)
    first, second = deliver(catalogue, parent, 1, 2)
    shared = archive(catalogue, store, first, shared_bytes)
    own = archive(catalogue, store, second, own_bytes)
    archive(catalogue, store, deliver(catalogue, child, 1)[0], shared_bytes)
    for sha in (shared, own):  # older than the store's grace period
        os.utime(store.path(sha, "jpg"), (1, 1))

    hashes = curation.delete_task(catalogue, parent)
    removed = {sha for sha in hashes if store.delete_unreferenced(catalogue, sha)}

    assert removed == {own}
    assert not os.path.exists(store.path(own, "jpg"))
    assert os.path.exists(store.path(shared, "jpg"))
    assert catalogue.get_task(parent) is None
    kept = catalogue.get_task(child)
    assert kept["parent_task_uuid"] is None and kept["rerun_mode"] == "exact"
    conn = catalogue.conn
    assert conn.execute("SELECT count(*) FROM results WHERE task_uuid = ?", (parent,)).fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM deliveries WHERE task_uuid = ?", (parent,)).fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM tasks_fts").fetchone()[0] == 1
    assert curation.delete_task(catalogue, parent) is None


def test_grouped_folds_each_repeated_kind_where_it_first_happened():
    events = [lineage.Event(f"2026-01-01T00:00:0{i}.000000Z", what) for i, what in enumerate(
        ["recorded", "delivery accepted", "archived", "delivery accepted", "archived",
         "complete"])]
    out = lineage.grouped(events)
    assert [getattr(e, "events", None) and len(e.events) or e.what for e in out] == [
        "recorded", 2, 2, "complete"]
    assert (out[1].what, out[1].at, out[1].until) == (
        "delivery accepted", events[1].at, events[3].at)
    assert lineage.grouped(events[:1]) == events[:1]
