"""Several images at once from the gallery (POST /results/bulk, /results/delete): star,
unstar, the deletion page and the deletion, the zip with sidecars; CSRF and bad picks."""

import io
import json
import os
import zipfile

import pytest

from tests.history_helpers import archive, deliver, make_task, picture
from tests.views_helpers import app_config, catalogue, csrf, provider, store, text  # noqa: F401


@pytest.fixture
def images(catalogue, store):
    """Three archived images (two in one task) and one still pending."""
    one = make_task(catalogue, "a glasshouse platform", numberResults=2, seed=7)
    two = make_task(catalogue, "a lantern bazaar", width=1024, height=576)
    made = deliver(catalogue, one, 7, 8) + deliver(catalogue, two, 9)
    for n, image in enumerate(made):
        archive(catalogue, store, image, picture(n + 1))
    pending = deliver(catalogue, two, 10)[0]
    return {"one": one, "two": two, "archived": made, "pending": pending}


def post(client, path, **form):
    form.setdefault("csrf_token", csrf(client))
    return client.post(path, data=form)


def starred(catalogue):
    return {row[0] for row in catalogue.conn.execute(
        "SELECT image_uuid FROM results WHERE starred = 1")}


def test_star_and_unstar_several(client, catalogue, images):
    picked = images["archived"][:2]
    response = post(client, "/results/bulk", action="star", image=picked, next="/?sort=oldest")
    assert response.status_code == 303 and response.headers["Location"] == "/?sort=oldest"
    assert starred(catalogue) == set(picked)
    answer = client.post("/results/bulk", data={"action": "unstar", "image": picked[:1]},
                         headers={"X-CSRF-Token": csrf(client), "Accept": "application/json"})
    assert answer.get_json() == {"starred": False, "images": picked[:1], "changed": 1}
    assert starred(catalogue) == {picked[1]}


def test_delete_asks_with_thumbnails_then_deletes_only_unshared_files(
        client, catalogue, store, images):
    first, second, third = images["archived"]
    # Another task holds the very same file as the first image: it must stay.
    other = make_task(catalogue, "a copy")
    shared_sha = archive(catalogue, store, deliver(catalogue, other, 1)[0], picture(1))
    page = post(client, "/results/bulk", action="delete", image=[first, third])
    assert page.status_code == 200
    body = text(page)
    sha = {image: catalogue.conn.execute("SELECT sha256 FROM results WHERE image_uuid = ?",
                                         (image,)).fetchone()[0] for image in (first, third)}
    assert sha[first] == shared_sha
    for digest in set(sha.values()):  # stored long ago: past the deletion's grace period
        os.utime(store.path(digest, "jpg"), (1, 1))
    for image in (first, third):
        assert f'src="/thumbs/{sha[image]}.webp"' in body
    assert "Delete 2 images?" in body and "1 task is left with no image" not in body
    assert catalogue.conn.execute("SELECT count(*) FROM results").fetchone()[0] == 5
    done = post(client, "/results/delete", image=[first, third, images["pending"]],
                confirm="yes", next="/")
    assert done.status_code == 303
    left = {row[0] for row in catalogue.conn.execute("SELECT image_uuid FROM results")}
    assert first not in left and third not in left and second in left
    assert catalogue.get_task(images["two"]) is None  # left with no image: gone too
    assert catalogue.get_task(images["one"]) is not None
    assert store.has(shared_sha, "jpg")  # still the other task's file
    assert not store.has(sha[third], "jpg")  # no one else's: gone
    assert "Deleted 3 image(s) and 1 task(s) left empty" in text(client.get("/"))


def test_delete_without_confirm_only_asks(client, catalogue, images):
    response = post(client, "/results/delete", image=images["archived"][:1])
    assert response.status_code == 200 and "Delete for good" in text(response)
    assert catalogue.conn.execute("SELECT count(*) FROM results").fetchone()[0] == 4


def test_the_zip_holds_each_download_and_its_sidecar(client, catalogue, images):
    picked = [*images["archived"], images["pending"]]
    response = post(client, "/results/bulk", action="zip", image=picked)
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert response.is_streamed
    assert 'filename="runware-archive-4-images.zip"' in response.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(response.get_data())) as z:
        names = set(z.namelist())
        assert names == {f"{i}.jpg" for i in images["archived"]} | \
            {f"{i}.json" for i in images["archived"]} | {"skipped.txt"}
        for image in images["archived"]:
            assert z.read(f"{image}.jpg") == client.get(f"/download/{image}").get_data()
            assert json.loads(z.read(f"{image}.json")) == \
                client.get(f"/download/{image}.json").get_json()
        assert images["pending"] in z.read("skipped.txt").decode()
        assert z.getinfo(f"{images['archived'][0]}.jpg").compress_type == zipfile.ZIP_STORED


def test_bulk_needs_the_csrf_token(client, catalogue, images):
    picked = images["archived"][:1]
    assert client.post("/results/bulk", data={"action": "star", "image": picked}).status_code == 400
    assert client.post("/results/bulk", data={"action": "star", "image": picked,
                                              "csrf_token": "forged"}).status_code == 403
    assert client.post("/results/delete", data={"image": picked, "confirm": "yes"}).status_code == 400
    assert starred(catalogue) == set()
    assert catalogue.conn.execute("SELECT count(*) FROM results").fetchone()[0] == 4


@pytest.mark.parametrize("form,status,says", [
    ({"action": "star"}, 400, "pick at least one"),
    ({"action": "star", "image": ["../../etc/passwd"]}, 400, "is not an imageUUID"),
    ({"action": "star", "image": ["x" * 36]}, 400, "is not an imageUUID"),
    ({"action": "burn", "image": ["00000000-0000-4000-8000-000000000000"]}, 400, "action"),
    ({"action": "zip", "image": ["00000000-0000-4000-8000-000000000000"]}, 404, "None of"),
    ({"action": "delete", "image": ["00000000-0000-4000-8000-000000000000"]}, 404, "None of"),
    ({"action": "star", "image": [f"00000000-0000-4000-8000-{n:012d}" for n in range(501)]},
     400, "at most 500"),
])
def test_bad_picks_are_4xx_and_change_nothing(client, catalogue, images, form, status, says):
    response = post(client, "/results/bulk", **form)
    assert response.status_code == status and says in text(response)
    assert starred(catalogue) == set()
    assert catalogue.conn.execute("SELECT count(*) FROM results").fetchone()[0] == 4


def test_a_card_offers_exact_for_its_own_image(client, catalogue, images, provider):
    page = text(client.get("/"))
    for image in images["archived"]:
        assert f'action="/results/{image}/rerun"' in page
        assert f'value="{image}" form="bulk" data-pick' in page
    assert 'id="bulk"' in page and 'action="/results/bulk"' in page
