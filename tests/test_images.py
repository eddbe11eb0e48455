"""The content-addressed store: originals once, verified, thumbnails once, inline data."""

import base64
import hashlib
import os

import pytest
from PIL import Image

from archive.catalogue import Catalogue
from archive.images import BadImage, ImageStore, decode_inline, inline_image_columns
from tests.imagehost import picture, png_bomb


@pytest.fixture
def store(tmp_path):
    return ImageStore(tmp_path / "data", max_bytes=200_000)


def visible_files(store):
    """Every file under images/ and thumbs/ except the temporary folder."""
    found = []
    for top in (store.images, store.thumbs):
        for folder, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if d != ".tmp"]
            found += [os.path.join(folder, f) for f in files]
    return found


@pytest.mark.parametrize("fmt, ext", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")])
def test_an_original_is_stored_byte_for_byte_under_its_sha256(store, fmt, ext):
    data = picture(fmt)
    stored = store.add_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    assert (stored.sha256, stored.ext, stored.size) == (sha, ext, len(data))
    assert (stored.width, stored.height) == (96, 64)
    path = store.path(sha, ext)
    assert path.endswith(f"images/{sha[:2]}/{sha}.{ext}")
    with open(path, "rb") as f:
        assert f.read() == data
    assert os.listdir(store.tmp) == []


def test_identical_bytes_are_stored_once(store):
    data = picture("PNG")
    first, second = store.add_bytes(data), store.add_bytes(data)
    assert first == second
    assert visible_files(store) == [store.path(first.sha256, "png")]


def test_the_extension_comes_from_the_bytes_not_the_name(store):
    assert store.add_bytes(picture("PNG")).ext == "png"
    assert store.add_bytes(picture("WEBP", quality=80)).ext == "webp"


@pytest.mark.parametrize("name, data, reason", [
    ("html", b"<!doctype html><html><body>gotcha</body></html>", "not an image"),
    ("gif", picture("GIF"), "not an image"),
    ("truncated", picture("JPEG", size=(400, 300))[:1500], "damaged"),
    ("bomb", png_bomb(), "decompression bomb"),
    ("empty", b"", "not an image"),
    ("too big", b"\xff\xd8" + b"\x00" * 200_001, "over the 200000-byte limit"),
])
def test_refused_bytes_leave_nothing_behind(store, name, data, reason):
    with pytest.raises(BadImage, match=reason):
        store.add_bytes(data)
    assert visible_files(store) == []
    assert os.listdir(store.tmp) == []


def test_a_thumbnail_is_webp_384px_and_made_once(store):
    stored = store.add_bytes(picture("PNG", size=(1024, 768)))
    path = store.thumbnail(stored.sha256, stored.ext)
    assert path.endswith(f"thumbs/{stored.sha256[:2]}/{stored.sha256}.webp")
    with Image.open(path) as im:
        assert (im.format, im.size) == ("WEBP", (384, 288))
    before = os.stat(path).st_mtime_ns
    assert store.thumbnail(stored.sha256, stored.ext) == path
    assert os.stat(path).st_mtime_ns == before


def test_inline_base64_and_data_uri_decode_to_the_same_image(store):
    data = picture("PNG")
    text = base64.b64encode(data).decode()
    assert decode_inline({"imageBase64Data": text}, 200_000) == data
    assert decode_inline({"imageDataURI": f"data:image/png;base64,{text}"}, 200_000) == data


@pytest.mark.parametrize("item, reason", [
    ({"imageBase64Data": "not base64 at all!"}, "not valid base64"),
    ({"imageDataURI": "data:text/html,<script>alert(1)</script>"}, "not a base64 image"),
    ({"imageDataURI": "https://example.com/x.png"}, "not a base64 image"),
    ({"imageBase64Data": "A" * 400_000}, "over the 200000-byte limit"),
])
def test_bad_inline_data_is_refused_before_decoding(item, reason):
    with pytest.raises(BadImage, match=reason):
        decode_inline(item, 200_000)


def test_the_prepare_hook_archives_inline_results_or_says_why_not(store):
    prepare = inline_image_columns(store)
    data = picture("WEBP")
    good = prepare({"imageUUID": "x", "imageBase64Data": base64.b64encode(data).decode()})
    assert good["archive_state"] == "archived"
    assert good["sha256"] == hashlib.sha256(data).hexdigest()
    assert (good["file_ext"], good["img_width"], good["img_height"]) == ("webp", 96, 64)
    html = base64.b64encode(b"<html></html>").decode()
    bad = prepare({"imageUUID": "y", "imageDataURI": f"data:image/jpeg;base64,{html}"})
    assert bad["archive_state"] == "failed"
    assert "not an image" in bad["archive_error"]
    assert prepare({"imageUUID": "z", "imageURL": "https://im.runware.ai/x.jpg"}) == {}


def test_a_file_is_deleted_only_when_nothing_references_it(tmp_path, store, migrated_copy):
    catalogue = Catalogue(migrated_copy(tmp_path / "c.db"))
    catalogue.migrate()
    kept, dropped = store.add_bytes(picture("PNG")), store.add_bytes(picture("JPEG"))
    store.thumbnail(dropped.sha256, dropped.ext)
    catalogue.create_task({"task_uuid": "t", "model": "m", "positive_prompt": "p",
                           "params": {}, "provider": "sandbox", "number_results": 1})
    with catalogue.write() as conn:
        conn.execute("INSERT INTO results (image_uuid, task_uuid, received_at, output_kind,"
                     " archive_state, sha256) VALUES ('i', 't', 'now', 'URL', 'archived', ?)",
                     (kept.sha256,))
    assert not store.delete_unreferenced(catalogue, kept.sha256, grace=0)
    assert not store.delete_unreferenced(catalogue, dropped.sha256)  # just stored: grace
    assert store.delete_unreferenced(catalogue, dropped.sha256, grace=0)
    assert visible_files(store) == [store.path(kept.sha256, "png")]


def test_stale_temporary_files_are_swept(store):
    f, path = store.temp_file()
    f.close()
    assert store.sweep_temp(older_than=3600) == 0
    os.utime(path, (0, 0))
    assert store.sweep_temp(older_than=3600) == 1
    assert os.listdir(store.tmp) == []


def test_orphans_are_swept_once_they_are_old(tmp_path, store, migrated_copy):
    catalogue = Catalogue(migrated_copy(tmp_path / "c.db"))
    catalogue.migrate()
    orphan = store.add_bytes(picture("PNG"))
    assert store.sweep_orphans(catalogue) == 0  # stored just now: maybe about to be committed
    os.utime(store.path(orphan.sha256, "png"), (0, 0))
    assert store.sweep_orphans(catalogue) == 1
    assert visible_files(store) == []
