"""The archive with its images in a bucket, end to end over loopback: the sandbox as the
provider, moto's S3 server as the bucket (tests/s3server.py). Every way an image arrives
(a webhook's URL downloaded by the fetcher, inline base64 and dataURI, a PUT straight into
the bucket through a presigned uploadEndpoint, an import) lands in the bucket and nowhere
else; pages, /files/, /thumbs/, /download/ and export work from it; deleting a task
deletes what no other task shares."""

import hashlib
import io
import os
import time
import uuid

import pytest
import requests
from PIL import Image

import archive.images
from archive import uploads
from archive.catalogue import Catalogue
from archive.exchange import export, import_archive
from archive.s3store import S3Store
from receiver.storage import get_store
from tests.imagehost import picture
from tests.s3server import bucket, client, keys, make_bucket, s3_endpoint  # noqa: F401
from tests.test_archive_e2e import archived, embedded_text, submit, wait_until
from tests.views_helpers import csrf

CASES = [
    ({"outputType": "URL", "outputFormat": "JPG", "numberResults": 2}, "jpg"),
    ({"outputType": "URL", "outputFormat": "WEBP"}, "webp"),
    ({"outputType": "base64Data", "outputFormat": "PNG", "numberResults": 2}, "png"),
    ({"outputType": "dataURI", "outputFormat": "JPG"}, "jpg"),
]
TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}


@pytest.fixture
def app_config(app_config, s3_endpoint, bucket, request):
    return {**app_config, "RUNWARE_ARCHIVE_STORAGE": f"s3://{bucket}/archive",
            "RUNWARE_ARCHIVE_S3_ENDPOINT": s3_endpoint, "RUNWARE_ARCHIVE_UPLOADS": "on",
            "RUNWARE_SANDBOX_RESULT_DELAY": 0.01, "RUNWARE_SANDBOX_RETRY_BASE": 0.02,
            "RUNWARE_SANDBOX_RETRY_CAP": 0.1, **getattr(request, "param", {})}


def local_images(data_dir):
    """Image files in the data folder, besides its staging folder and the bucket store's
    local copies of the few originals it stored last (for their thumbnails): none."""
    found = []
    for top in ("images", "thumbs"):
        for folder, dirs, files in os.walk(os.path.join(data_dir, top)):
            dirs[:] = [d for d in dirs if d not in (".tmp", ".recent")]
            found += files
    return found


def test_every_image_path_lands_in_the_bucket(live_server, fetcher, s3_endpoint, bucket):
    url, app = live_server.url, live_server.app
    tasks = {submit(url, **params): ext for params, ext in CASES}
    for task_uuid in tasks:
        assert wait_until(lambda: archived(url, task_uuid)), archived(url, task_uuid)
    catalogue = app.extensions["catalogue"]
    assert wait_until(lambda: not keys(s3_endpoint, bucket, "archive/incoming/"))
    stored = keys(s3_endpoint, bucket, "archive/images/")
    for task_uuid, ext in tasks.items():
        task = archived(url, task_uuid)
        assert task["params"]["uploadEndpoint"].startswith(f"{s3_endpoint}/{bucket}/archive/"
                                                           f"incoming/{task_uuid}")
        for result in task["results"]:
            sha = result["sha256"]
            assert f"archive/images/{sha[:2]}/{sha}.{ext}" in stored
            check_served(url, s3_endpoint, task, result, ext)
    assert local_images(app.config["RUNWARE_ARCHIVE_DIR"]) == []
    assert os.listdir(get_store(app).tmp) == []
    # The one-image URL task's PUT went straight into the bucket and was matched to it
    # as its only result; the PUTs of the others were checked and matched by content.
    from_bucket = catalogue.conn.execute(
        "SELECT matched_by FROM uploads WHERE remote_addr = 'bucket'").fetchall()
    assert len(from_bucket) >= 3 and all(row[0] for row in from_bucket), from_bucket
    webp_task = next(t for t, ext in tasks.items() if ext == "webp")
    assert catalogue.conn.execute(
        "SELECT matched_by FROM uploads WHERE task_uuid = ?", (webp_task,)).fetchone()[0] \
        in ("only result", "sha256")


def check_served(url, endpoint, task, result, ext):
    """/files/ redirects to a presigned GET of the object, keeping the ETag promise."""
    sha = result["sha256"]
    hop = requests.get(url + result["file"], allow_redirects=False, timeout=5)
    assert hop.status_code == 302 and hop.headers["Location"].startswith(endpoint)
    assert hop.headers["ETag"].strip('"') == sha
    assert "X-Amz-Signature=" in hop.headers["Location"]
    original = requests.get(url + result["file"], timeout=5)
    assert original.status_code == 200
    assert hashlib.sha256(original.content).hexdigest() == sha
    assert original.headers["Content-Type"] == TYPES[ext]
    assert "immutable" in original.headers["Cache-Control"]
    again = requests.get(url + result["file"], headers={"If-None-Match": f'"{sha}"'}, timeout=5)
    assert again.status_code == 304
    thumb = requests.get(url + result["thumbnail"], timeout=5)
    assert thumb.status_code == 200 and thumb.headers["Content-Type"] == "image/webp"
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 384
    download = requests.get(url + result["download"], timeout=5)
    assert download.headers["Content-Disposition"].startswith("attachment")
    assert f"Seed: {result['seed']}" in embedded_text(download.content, ext)


def test_pages_allow_images_from_the_bucket_only(client, s3_endpoint):
    policy = client.get("/").headers["Content-Security-Policy"]
    assert f"img-src 'self' data: {s3_endpoint};" in policy
    assert "script-src 'self';" in policy
    assert client.get("/healthz").get_json()["storage"] == "s3"


@pytest.mark.parametrize("app_config", [{"RUNWARE_ARCHIVE_S3_SERVE": "stream"}],
                         indirect=True)
def test_files_can_stream_through_the_service(live_server, fetcher, client):
    url = live_server.url
    task_uuid = submit(url, outputType="URL", outputFormat="PNG")
    assert wait_until(lambda: archived(url, task_uuid))
    result = archived(url, task_uuid)["results"][0]
    sha = result["sha256"]
    original = requests.get(url + result["file"], allow_redirects=False, timeout=5)
    assert original.status_code == 200 and hashlib.sha256(original.content).hexdigest() == sha
    assert original.headers["ETag"].strip('"') == sha
    assert original.headers["Content-Type"] == "image/png"
    assert "immutable" in original.headers["Cache-Control"]
    assert requests.get(url + result["file"], headers={"If-None-Match": f'"{sha}"'},
                        timeout=5).status_code == 304
    thumb = requests.get(url + result["thumbnail"], allow_redirects=False, timeout=5)
    assert thumb.status_code == 200 and thumb.headers["ETag"].strip('"') == f"{sha}-thumb"
    assert "img-src 'self' data:;" in client.get("/").headers["Content-Security-Policy"]


def test_a_bad_object_put_into_the_bucket_is_refused_and_removed(app, s3_endpoint, bucket):
    catalogue, store = app.extensions["catalogue"], get_store(app)
    task_uuid = str(uuid.uuid4())
    catalogue.create_task({"task_uuid": task_uuid, "model": "m", "positive_prompt": "p",
                           "params": {}, "provider": "sandbox", "number_results": 1})
    put_url, _ = store.upload_endpoint(task_uuid, expires=60)
    assert requests.put(put_url, data=b"<html>not an image</html>", timeout=5).ok
    assert uploads.take_all_incoming(catalogue, store) == 0
    assert keys(s3_endpoint, bucket) == []
    assert catalogue.conn.execute("SELECT count(*) FROM uploads").fetchone()[0] == 0
    good = picture("PNG")
    assert requests.put(put_url, data=good, timeout=5).ok
    assert uploads.take_all_incoming(catalogue, store) == 1
    sha = hashlib.sha256(good).hexdigest()
    assert keys(s3_endpoint, bucket) == [f"archive/images/{sha[:2]}/{sha}.png"]


def test_an_image_put_after_the_one_taken_is_kept_for_next_time(app, s3_endpoint, bucket):
    catalogue, store = app.extensions["catalogue"], get_store(app)
    task_uuid = str(uuid.uuid4())
    catalogue.create_task({"task_uuid": task_uuid, "model": "m", "positive_prompt": "p",
                           "params": {}, "provider": "sandbox", "number_results": 2})
    put_url, _ = store.upload_endpoint(task_uuid, expires=60)
    first, second = picture("PNG"), picture("JPEG")
    requests.put(put_url, data=first, timeout=5).raise_for_status()
    tmp = store.take_incoming(task_uuid)
    requests.put(put_url, data=second, timeout=5).raise_for_status()  # before the delete
    store.add_file(tmp)
    store.drop_incoming(task_uuid)
    assert keys(s3_endpoint, bucket, "archive/incoming/") == [f"archive/incoming/{task_uuid}"]
    assert uploads.take_all_incoming(catalogue, store) == 1
    assert keys(s3_endpoint, bucket, "archive/incoming/") == []


class Later:
    """``time`` as the store sees it, a minute on: what it stored is past its grace."""

    @staticmethod
    def time():
        return time.time() + 60


def test_deleting_a_task_deletes_the_objects_no_other_task_shares(
        live_server, fetcher, s3_endpoint, bucket, monkeypatch):
    url, app = live_server.url, live_server.app
    doomed = submit(url, outputType="URL", outputFormat="PNG", numberResults=2)
    kept = submit(url, outputType="URL", outputFormat="PNG", numberResults=1)  # same seed
    for task_uuid in (doomed, kept):
        assert wait_until(lambda: archived(url, task_uuid))
    shared = archived(url, kept)["results"][0]["sha256"]
    own = {r["sha256"] for r in archived(url, doomed)["results"]} - {shared}
    assert shared in {r["sha256"] for r in archived(url, doomed)["results"]} and len(own) == 1
    requests.get(f"{url}/thumbs/{shared}.webp", timeout=5)
    monkeypatch.setattr(archive.images, "time", Later)
    client = app.test_client()
    token = csrf(client)
    done = client.post(f"/tasks/{doomed}/delete", data={"csrf_token": token, "confirm": "yes"})
    assert done.status_code == 303
    left = keys(s3_endpoint, bucket, "archive/")
    assert [k for k in left if shared in k] == [f"archive/images/{shared[:2]}/{shared}.png",
                                               f"archive/thumbs/{shared[:2]}/{shared}.webp"]
    gone = own.pop()
    assert not [k for k in left if gone in k]


def test_export_from_a_bucket_and_import_into_another(tmp_path, live_server, fetcher,
                                                      s3_endpoint, bucket, migrated_copy):
    url, app = live_server.url, live_server.app
    task_uuid = submit(url, outputType="URL", outputFormat="JPG", numberResults=2)
    assert wait_until(lambda: archived(url, task_uuid))
    out = tmp_path / "export.zip"
    summary = export(app.extensions["catalogue"], get_store(app), out)
    assert (summary.tasks, summary.files) == (1, 2)
    other = make_bucket(s3_endpoint)
    target = Catalogue(migrated_copy(tmp_path / "target" / "catalogue.db"))
    store = S3Store(tmp_path / "target", other, "", endpoint=s3_endpoint)
    assert import_archive(target, store, out).files == 2
    for result in archived(url, task_uuid)["results"]:
        sha = result["sha256"]
        with store.open(sha, "jpg") as f:
            assert hashlib.sha256(f.read()).hexdigest() == sha
    assert len(keys(s3_endpoint, other, "images/")) == 2
    assert local_images(tmp_path / "target") == []


def test_the_sandbox_puts_into_the_bucket_only_at_the_tasks_own_key(app, s3_endpoint, bucket):
    from sandbox import guard

    own, store = app.extensions["sandbox_callbacks"], get_store(app)
    mine, other = str(uuid.uuid4()), str(uuid.uuid4())
    url_mine, _ = store.upload_endpoint(mine, expires=60)
    url_other, _ = store.upload_endpoint(other, expires=60)
    assert guard.callback_allowed(url_mine, app.config, own("uploadEndpoint", mine))
    assert not guard.callback_allowed(url_other, app.config, own("uploadEndpoint", mine))
    assert not guard.callback_allowed(f"{s3_endpoint}/{bucket}/archive/images/ab/x.jpg",
                                      app.config, own("uploadEndpoint", mine))
    assert not guard.callback_allowed(url_mine, app.config, own("webhookURL", mine))
    assert not guard.callback_allowed(f"{s3_endpoint}/", app.config, own("uploadEndpoint", mine))


@pytest.mark.parametrize("app_config", [{"RUNWARE_ARCHIVE_STORAGE": "s3://no-such-bucket/x"}],
                         indirect=True)
def test_an_unreachable_bucket_fails_healthz_and_the_pages_still_render(client):
    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.get_json()["storageOk"] is False
    assert "HeadBucket" in health.get_json()["storageError"]
    assert client.get("/").status_code == 200
