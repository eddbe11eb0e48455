"""The content-addressed store: originals once, verified, thumbnails once, inline data.

Every test runs against both stores, the data folder and a bucket of a real S3-protocol
server on loopback (tests/s3server.py): the promises are the same."""

import base64
import hashlib
import os
import time

import pytest
from PIL import Image

from archive.catalogue import Catalogue
from archive.filestore import FileStore
from archive.images import BadImage, decode_inline, inline_image_columns
from archive.locations import parse_location
from archive.s3store import S3Store
from tests.imagehost import picture, png_bomb
from tests.s3server import bucket, keys, s3_endpoint  # noqa: F401 - fixtures


@pytest.fixture(params=["file", "s3"])
def store(request, tmp_path):
    """The same tests for both stores; the bucket one under a prefix, as configured."""
    if request.param == "file":
        return FileStore(tmp_path / "data", max_bytes=200_000)
    endpoint = request.getfixturevalue("s3_endpoint")
    return S3Store(tmp_path / "data", request.getfixturevalue("bucket"), "archive/",
                   endpoint=endpoint, max_bytes=200_000)


def visible_files(store):
    """Every name stored under images/ and thumbs/ (never the local staging folder)."""
    return sorted(name for top in ("images/", "thumbs/") for name, _ in store.listing(top))


def read(store, name):
    with store._open(name) as f:
        return f.read()


@pytest.mark.parametrize("fmt, ext", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp")])
def test_an_original_is_stored_byte_for_byte_under_its_sha256(store, fmt, ext):
    data = picture(fmt)
    stored = store.add_bytes(data)
    sha = hashlib.sha256(data).hexdigest()
    assert (stored.sha256, stored.ext, stored.size) == (sha, ext, len(data))
    assert (stored.width, stored.height) == (96, 64)
    assert visible_files(store) == [f"images/{sha[:2]}/{sha}.{ext}"]
    with store.open(sha, ext) as f:
        assert f.read() == data
    assert os.listdir(store.tmp) == []


def test_identical_bytes_are_stored_once(store):
    data = picture("PNG")
    first, second = store.add_bytes(data), store.add_bytes(data)
    assert first == second
    assert visible_files(store) == [store.original_name(first.sha256, "png")]


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
    name = store.thumbnail(stored.sha256, stored.ext)
    assert name == f"thumbs/{stored.sha256[:2]}/{stored.sha256}.webp"
    with store.open_thumbnail(stored.sha256, stored.ext) as f, Image.open(f) as im:
        assert (im.format, im.size) == ("WEBP", (384, 288))
    before = store.listing("thumbs/")
    assert store.thumbnail(stored.sha256, stored.ext) == name
    assert store.listing("thumbs/") == before  # not made again
    assert os.listdir(store.tmp) == []


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
    assert store.has(dropped.sha256, "jpg")
    assert store.delete_unreferenced(catalogue, dropped.sha256, grace=0)
    assert visible_files(store) == [store.original_name(kept.sha256, "png")]
    assert not store.has(dropped.sha256, "jpg") and store.has(kept.sha256, "png")


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
    store.thumbnail(orphan.sha256, orphan.ext)
    assert store.sweep_orphans(catalogue) == 0  # stored just now: maybe about to be committed
    assert store.sweep_orphans(catalogue, older_than=0) == 1  # as if it had been a while
    assert visible_files(store) == []


def test_storing_known_bytes_again_renews_their_grace(tmp_path, store, migrated_copy):
    catalogue = Catalogue(migrated_copy(tmp_path / "c.db"))
    data = picture("PNG")
    stored = store.add_bytes(data)
    (name, first), = store.listing("images/")
    time.sleep(1.1)  # S3 keeps LastModified to the second
    store.add_bytes(data)
    (_, second), = store.listing("images/")
    assert second > first
    assert not store.delete_unreferenced(catalogue, stored.sha256, grace=1.0)


def test_names_that_are_not_sha256_are_never_swept(tmp_path, store, migrated_copy):
    catalogue = Catalogue(migrated_copy(tmp_path / "c.db"))
    f, tmp = store.temp_file()
    with f:
        f.write(b"not an image")
    store._put(tmp, "images/ab/notes.txt", hashlib.sha256(b"not an image").hexdigest())
    if os.path.exists(tmp):
        os.unlink(tmp)
    assert store.sweep_orphans(catalogue, older_than=0) == 0
    assert store.delete_unreferenced(catalogue, "../../etc/passwd", grace=0) is False
    assert visible_files(store) == ["images/ab/notes.txt"]


def test_a_bucket_store_keeps_objects_under_its_prefix_with_their_type(
        tmp_path, s3_endpoint, bucket):
    store = S3Store(tmp_path / "data", bucket, "some/prefix/", endpoint=s3_endpoint)
    stored = store.add_bytes(picture("JPEG"))
    store.thumbnail(stored.sha256, stored.ext)
    sha = stored.sha256
    assert keys(s3_endpoint, bucket) == [f"some/prefix/images/{sha[:2]}/{sha}.jpg",
                                         f"some/prefix/thumbs/{sha[:2]}/{sha}.webp"]
    head = store.client.head_object(Bucket=bucket, Key=f"some/prefix/images/{sha[:2]}/{sha}.jpg")
    assert head["ContentType"] == "image/jpeg"
    assert "immutable" in head["CacheControl"]


@pytest.mark.parametrize("location, parsed", [
    ("s3://b", ("b", "")), ("s3://b/", ("b", "")), ("s3://b/p", ("b", "p/")),
    ("s3://b/p/q/", ("b", "p/q/")),
])
def test_bucket_locations_parse(location, parsed):
    assert parse_location(location) == parsed


@pytest.mark.parametrize("location", ["file", "http://b/p", "s3://", "s3:///p", "s3://b/p?x=1"])
def test_bad_bucket_locations_are_refused(location):
    with pytest.raises(ValueError):
        parse_location(location)


def test_a_bucket_store_keeps_only_the_last_few_originals_locally(tmp_path, s3_endpoint, bucket,
                                                                 migrated_copy):
    from archive import s3store

    store = S3Store(tmp_path / "data", bucket, "", endpoint=s3_endpoint)
    stored = [store.add_bytes(picture("PNG", size=(64 + i, 64))) for i in range(s3store.RECENT + 2)]
    assert len(os.listdir(store.recent_dir)) == s3store.RECENT
    last = stored[-1]
    with store.open(last.sha256, "png") as f:
        assert os.path.dirname(f.name) == store.recent_dir  # read back without a GET
    first = stored[0]
    with store.open(first.sha256, "png") as f:  # long gone from the local copies: the bucket
        assert hashlib.sha256(f.read()).hexdigest() == first.sha256
    catalogue = Catalogue(migrated_copy(tmp_path / "c.db"))
    assert store.delete_unreferenced(catalogue, last.sha256, grace=0)
    assert len(os.listdir(store.recent_dir)) == s3store.RECENT - 1
    with pytest.raises(FileNotFoundError):
        store.open(last.sha256, "png")
