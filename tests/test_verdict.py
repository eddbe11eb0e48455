"""archive.verdict: the dHash, its threshold, and the verdict on each image of a re-run."""

import io

import pytest
from PIL import Image

from archive import verdict
from archive.catalogue import Catalogue
from archive.filestore import FileStore
from sandbox import render as sandbox_render
from tests.history_helpers import archive, deliver, make_task, picture

TASK = {"positivePrompt": "a lighthouse at dawn", "width": 512, "height": 384, "steps": 4}


def hash_of(data):
    return verdict.dhash(Image.open(io.BytesIO(data)))


def reencoded(data, fmt, **save):
    buffer = io.BytesIO()
    Image.open(io.BytesIO(data)).convert("RGB").save(buffer, fmt, **save)
    return buffer.getvalue()


def test_dhash_is_64_bits_and_stable():
    data = sandbox_render.render_bytes(TASK, 7)
    value = hash_of(data)
    assert 0 <= value < 2**64 and value == hash_of(data)
    assert verdict.distance(value, value) == 0
    assert verdict.distance(0, 2**64 - 1) == 64


@pytest.mark.parametrize("fmt,save", [("JPEG", {"quality": 30}), ("JPEG", {"quality": 60}),
                                      ("PNG", {}), ("WEBP", {"quality": 80})])
def test_a_reencoded_copy_is_within_the_threshold(fmt, save):
    data = sandbox_render.render_bytes(TASK, 7)
    copy = reencoded(data, fmt, **save)
    assert copy != data
    assert verdict.distance(hash_of(data), hash_of(copy)) <= 1


def test_other_seeds_are_far_beyond_the_threshold():
    base = hash_of(sandbox_render.render_bytes(TASK, 7))
    distances = [verdict.distance(base, hash_of(sandbox_render.render_bytes(TASK, seed)))
                 for seed in range(8, 28)]
    assert min(distances) > 2 * verdict.VISUAL_THRESHOLD


def test_pairing_by_seed_then_by_position():
    parent = [{"seed": 1, "id": 1}, {"seed": 2, "id": 2}]
    child = [{"seed": 2, "id": 3}, {"seed": 9, "id": 4}, {"seed": 10, "id": 5}]
    pairs = verdict.pair(child, parent)
    assert [(p and p["id"], how) for _, p, how in pairs] == [
        (2, "seed"), (2, "position"), (None, None)]


@pytest.fixture
def catalogue(tmp_path, migrated_copy):
    cat = Catalogue(migrated_copy(tmp_path / "catalogue.db"))
    cat.migrate()  # up to date already: a copy of the session's migrated catalogue
    return cat


@pytest.fixture
def store(tmp_path):
    return FileStore(tmp_path)


def results_of(catalogue, task_uuid):
    return catalogue.get_task(task_uuid)["results"]


def test_the_three_verdicts_and_pending(catalogue, store):
    parent = make_task(catalogue, numberResults=4)
    child = make_task(catalogue, parent=parent, rerun_mode="exact", numberResults=4)
    original = picture(1, quality=95)
    parents = deliver(catalogue, parent, 1, 2, 3, 4)
    children = deliver(catalogue, child, 1, 2, 3, 4)
    archive(catalogue, store, parents[0], original)
    archive(catalogue, store, children[0], original)
    archive(catalogue, store, parents[1], original)
    archive(catalogue, store, children[1], reencoded(original, "PNG"))
    archive(catalogue, store, parents[2], original)
    archive(catalogue, store, children[2], picture(5, quality=95))
    archive(catalogue, store, parents[3], original)  # the child's fourth is not archived

    cache = verdict.HashCache(catalogue, store.path)
    found = verdict.verdicts(results_of(catalogue, child), results_of(catalogue, parent), cache)
    assert [(v.kind, v.matched_by) for v in found] == [
        (verdict.IDENTICAL, "seed"), (verdict.VISUAL, "seed"), (verdict.DIFFERS, "seed"),
        (verdict.PENDING, "seed")]
    assert found[0].distance == 0 and found[1].distance <= verdict.VISUAL_THRESHOLD
    assert found[2].distance > verdict.VISUAL_THRESHOLD


def test_hashes_are_cached_in_the_catalogue(catalogue, store, monkeypatch):
    task = make_task(catalogue)
    image_uuid = deliver(catalogue, task, 1)[0]
    archive(catalogue, store, image_uuid, picture(3))
    cache = verdict.HashCache(catalogue, store.path)
    first = cache(results_of(catalogue, task)[0])
    stored = results_of(catalogue, task)[0]["dhash"]
    assert stored == f"{first:016x}"
    monkeypatch.setattr(verdict, "dhash_file", lambda path: pytest.fail("hashed twice"))
    assert cache(results_of(catalogue, task)[0]) == first


def test_a_missing_file_is_pending_not_an_error(catalogue, store):
    parent, child = make_task(catalogue), make_task(catalogue)
    a, b = deliver(catalogue, parent, 1)[0], deliver(catalogue, child, 1)[0]
    archive(catalogue, store, a, picture(1))
    archive(catalogue, store, b, picture(2))
    with catalogue.write() as conn:
        conn.execute("UPDATE results SET sha256 = ? WHERE image_uuid = ?", ("0" * 64, b))
    cache = verdict.HashCache(catalogue, store.path)
    found = verdict.verdicts(results_of(catalogue, child), results_of(catalogue, parent), cache)
    assert found[0].kind == verdict.PENDING


def test_a_failed_download_is_not_archived_rather_than_pending(catalogue, store):
    parent, child = make_task(catalogue), make_task(catalogue)
    archive(catalogue, store, deliver(catalogue, parent, 1)[0], picture(1))
    failed = deliver(catalogue, child, 1)[0]
    with catalogue.write() as conn:
        conn.execute("UPDATE results SET archive_state = 'failed' WHERE image_uuid = ?", (failed,))
    cache = verdict.HashCache(catalogue, store.path)
    found = verdict.verdicts(results_of(catalogue, child), results_of(catalogue, parent), cache)
    assert found[0].kind == verdict.UNAVAILABLE
