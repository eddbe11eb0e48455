"""``PUT /uploads/<taskUUID>``: the provider's raw image bytes, token-checked like the
webhook, stored like a download, and matched to a result only when that is certain."""

import hashlib
import os
import uuid

import pytest

from archive.uploads import match_pending
from receiver.storage import get_store
from receiver.provider.submit import upload_url
from receiver.provider.tokens import make_token
from tests.imagehost import picture

PNG = picture("PNG", colour=(40, 90, 160))


@pytest.fixture
def app_config(app_config, request):
    return dict(app_config, RUNWARE_ARCHIVE_MAX_IMAGE_BYTES=100_000,
                **getattr(request, "param", {}))


def new_task(app, number_results=1):
    task_uuid = str(uuid.uuid4())
    app.extensions["catalogue"].create_task({
        "task_uuid": task_uuid, "model": "m", "positive_prompt": "p", "params": {},
        "provider": "sandbox", "number_results": number_results})
    return task_uuid


def deliver(app, task_uuid, image_uuid=None, url="https://im.runware.ai/image/a.png"):
    image_uuid = image_uuid or str(uuid.uuid4())
    app.extensions["catalogue"].ingest(task_uuid, results=[
        {"imageUUID": image_uuid, "imageURL": url, "seed": 1}])
    return image_uuid


def put(client, app, task_uuid, data=PNG, *, token=None, query=""):
    if token is None:
        token = make_token(task_uuid, secret=app.extensions["webhook_secret"], purpose="upload")
    return client.put(f"/uploads/{task_uuid}?token={token}{query}", data=data,
                      headers={"Content-Type": "image/png"})


def result(app, image_uuid):
    cur = app.extensions["catalogue"].conn.execute(
        "SELECT archive_state, sha256, file_ext FROM results WHERE image_uuid = ?", (image_uuid,))
    return cur.fetchone()


def uploads(app):
    return app.extensions["catalogue"].conn.execute(
        "SELECT image_uuid, matched_by FROM uploads ORDER BY id").fetchall()


def stored_files(app):
    store = get_store(app)
    return [f for folder, _, files in os.walk(store.images) if folder != store.tmp
            for f in files]


def test_the_upload_url_carries_an_upload_token(app):
    task_uuid = new_task(app)
    url = upload_url(task_uuid, public_url="https://archive.example",
                     secret=app.extensions["webhook_secret"])
    token = make_token(task_uuid, secret=app.extensions["webhook_secret"], purpose="upload")
    assert url == f"https://archive.example/uploads/{task_uuid}?token={token}"


@pytest.mark.parametrize("token, status", [("", 401), ("0" * 64, 403), ("webhook", 403)])
def test_a_missing_or_wrong_token_is_refused_unread(app, client, token, status):
    task_uuid = new_task(app)
    if token == "webhook":  # the webhook's token is not the upload's
        token = make_token(task_uuid, secret=app.extensions["webhook_secret"])
    assert put(client, app, task_uuid, token=token).status_code == status
    assert uploads(app) == [] and stored_files(app) == []


@pytest.mark.parametrize("data, status", [
    (b"<html>not a picture</html>", 422), (b"\xff\xd8" + b"\x00" * 100_001, 413),
    (PNG[: len(PNG) // 2], 422)], ids=["html", "too big", "truncated"])
def test_bad_bytes_are_refused_and_nothing_is_kept(app, client, data, status):
    task_uuid = new_task(app)
    assert put(client, app, task_uuid, data).status_code == status
    assert uploads(app) == [] and stored_files(app) == []
    assert os.listdir(get_store(app).tmp) == []


def test_an_unknown_task_is_404_and_nothing_is_kept(app, client):
    assert put(client, app, str(uuid.uuid4())).status_code == 404
    assert stored_files(app) == []


def test_the_only_result_of_a_one_image_task_takes_its_upload_in_either_order(app, client):
    first = new_task(app)
    image = deliver(app, first)
    answer = put(client, app, first)
    assert answer.status_code == 201 and answer.json["imageUUID"] == image
    assert result(app, image) == ("archived", hashlib.sha256(PNG).hexdigest(), "png")

    second = new_task(app)
    other = picture("PNG", colour=(1, 200, 3))
    assert put(client, app, second, other).json["imageUUID"] is None  # webhook not here yet
    late = deliver(app, second)
    assert match_pending(app.extensions["catalogue"]) == 1
    assert result(app, late)[:2] == ("archived", hashlib.sha256(other).hexdigest())
    assert uploads(app) == [(image, "only result"), (late, "only result")]


def test_several_results_are_never_matched_by_order(app, client):
    task_uuid = new_task(app, number_results=2)
    images = [deliver(app, task_uuid), deliver(app, task_uuid)]
    assert put(client, app, task_uuid).json["imageUUID"] is None
    assert [result(app, i)[0] for i in images] == ["pending", "pending"]
    assert uploads(app) == [(None, None)]


def test_an_upload_matches_the_result_with_the_same_bytes(app, client):
    task_uuid = new_task(app, number_results=2)
    images = [deliver(app, task_uuid), deliver(app, task_uuid)]
    sha = get_store(app).add_bytes(PNG).sha256
    with app.extensions["catalogue"].write() as conn:  # as the fetcher would have it
        conn.execute("UPDATE results SET archive_state = 'archived', sha256 = ?,"
                     " file_ext = 'png' WHERE image_uuid = ?", (sha, images[1]))
    assert put(client, app, task_uuid).json["imageUUID"] == images[1]
    assert uploads(app) == [(images[1], "sha256")]


def test_an_image_uuid_in_the_query_names_the_result(app, client):
    task_uuid = new_task(app, number_results=2)
    images = [deliver(app, task_uuid), deliver(app, task_uuid)]
    answer = put(client, app, task_uuid, query=f"&imageUUID={images[0]}")
    assert answer.json["imageUUID"] == images[0]
    assert result(app, images[0])[0] == "archived" and result(app, images[1])[0] == "pending"
    assert uploads(app) == [(images[0], "imageUUID")]


def test_the_same_bytes_put_twice_are_stored_once(app, client):
    task_uuid = new_task(app, number_results=2)
    assert put(client, app, task_uuid).status_code == 201
    again = put(client, app, task_uuid)
    assert again.status_code == 200 and again.json["new"] is False
    assert len(uploads(app)) == 1 and len(stored_files(app)) == 1


@pytest.mark.parametrize("app_config", [{"RUNWARE_ARCHIVE_UI_PASSWORD": "s3cret"}],
                         indirect=True)
def test_with_a_ui_password_uploads_need_only_their_token_and_files_need_a_login(
        app, client):
    task_uuid = new_task(app)
    answer = put(client, app, task_uuid)
    assert answer.status_code == 201
    path = f"/files/{answer.json['sha256']}.png"
    assert client.get(path).status_code == 302  # to the login page
    assert client.get(f"/thumbs/{answer.json['sha256']}.webp").status_code == 302


def test_an_upload_before_its_webhook_makes_no_result_and_is_archived_like_a_download(
        app, client):
    """An upload brings bytes, not a result: the task counts nothing until its webhook
    comes through the one ingest; the late match then archives that result as a download
    would be (the catalogue's mark_archived): no claim, retry or error of an earlier
    attempt is left, and the upload counts as no download attempt."""
    catalogue, task_uuid = app.extensions["catalogue"], new_task(app)
    assert put(client, app, task_uuid).json["imageUUID"] is None
    task = catalogue.get_task(task_uuid)
    assert (task["results"], task["results_received"], task["status"]) == ([], 0, "sending")
    image = deliver(app, task_uuid)
    assert catalogue.get_task(task_uuid)["status"] == "complete"
    with catalogue.write() as conn:  # a download failed once and is being tried again
        conn.execute("UPDATE results SET archive_error = 'attempt 1: HTTP 503',"
                     " archive_attempts = 1, next_attempt_at = '2000-01-01T00:00:00.000000Z',"
                     " claimed_by = 'worker', claimed_until = '2999-01-01T00:00:00.000000Z'"
                     " WHERE image_uuid = ?", (image,))
    assert match_pending(catalogue) == 1
    (row,) = catalogue.get_task(task_uuid)["results"]
    assert (row["archive_state"], row["sha256"], row["file_ext"], row["file_size"],
            row["img_width"], row["img_height"]) == (
        "archived", hashlib.sha256(PNG).hexdigest(), "png", len(PNG), 96, 64)
    assert (row["archive_error"], row["next_attempt_at"], row["claimed_by"],
            row["claimed_until"], row["archive_attempts"]) == (None, None, None, None, 1)
    assert row["archived_at"] is not None
