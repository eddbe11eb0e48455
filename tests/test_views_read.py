"""``/read`` over HTTP (Flask's client, a real data folder): an image's parameters shown and
handed to the form, every refusal a clear 4xx, the CSRF check, and nothing kept."""

import io
import os
import re
from html import unescape

import pytest
from PIL import Image, PngImagePlugin

from archive import metadata
from receiver.views import read as read_view
from tests.history_helpers import deliver, make_task, picture
from tests.test_image_params import A1111_TEXT, png_claiming, task_and_result
from tests.views_helpers import app_config, catalogue, csrf, provider, text  # noqa: F401


def post(client, data, name="image.png", token=None):
    form = {"csrf_token": token or csrf(client, "/read")}
    if data is not None:
        form["image"] = (io.BytesIO(data), name)
    return client.post("/read", data=form, content_type="multipart/form-data")


def params(response):
    return {k: unescape(v) for k, v in
            re.findall(r'<td data-param="(\w+)">([^<]*)</td>', text(response), re.S)}


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
def test_our_download_shows_the_request_with_its_seed(client, fmt, ext):
    task, result = task_and_result()
    response = post(client, metadata.embed(picture(1, fmt=fmt), ext, task, result), f"a.{ext}")
    assert response.status_code == 200
    assert params(response) == {
        "positivePrompt": 'a harbor, "at" dusk\nsecond line', "negativePrompt": "blurry, text",
        "width": "1024", "height": "768", "steps": "4", "CFGScale": "1.5",
        "model": "runware:twinflow-z-image-turbo@0", "seed": "22452", "numberResults": "1"}
    page = text(response)
    assert "webhookURL" not in page and "secret" not in page  # never the service's own URL
    assert f"{fmt}, 256×192" in page


def test_open_in_the_form_prefills_new_without_sending(client, provider):
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111_TEXT)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "PNG", pnginfo=info)
    response = post(client, buffer.getvalue())
    assert response.status_code == 200
    shown = params(response)
    assert shown["seed"] == "965400086" and shown["CFGScale"] == "7"
    assert shown["width"] == shown["height"] == "512" and shown["scheduler"] == "Euler a"
    form = re.search(r'<form method="post" action="/new">(.*?)</form>', text(response), re.S)[1]
    fields = {k: unescape(v) for k, v in re.findall(r'name="([^"]+)" value="([^"]*)"', form)}
    fields["action"] = "preview"
    opened = client.post("/new", data=fields, follow_redirects=True)  # to its draft
    page = unescape(text(opened))
    assert 'id="f-seed" name="seed" value="965400086"' in page
    assert "girl with an artist's beret" in page
    assert provider.received == []  # a preview: nothing sent


def test_an_image_of_this_archive_links_its_task(client, catalogue):
    task_uuid = make_task(catalogue, "a harbor")
    image = deliver(catalogue, task_uuid, 7)[0]
    task = catalogue.get_task(task_uuid)
    row = {"seed": 7, "image_uuid": image, "cost": 0.0006, "sha256": None}
    data = metadata.embed(picture(1, fmt="PNG"), "png", task, row)
    page = text(post(client, data))
    assert f'href="/new?from={task_uuid}"' in page and f'href="/tasks/{task_uuid}"' in page


@pytest.mark.parametrize("data,name,status,message", [
    (None, None, 400, "Choose an image file"),
    (b"", "empty.png", 415, "empty.png is not a PNG, JPEG or WEBP image."),
    (b"%PDF-1.4 hello", "doc.pdf", 415, "doc.pdf is not a PNG, JPEG or WEBP image."),
    (png_claiming(100000, 100000), "bomb.png", 415, "claims more pixels than any real one"),
    (picture(2, fmt="PNG"), "plain.png", 422, "carries no generation parameters"),
])
def test_refusals_are_clear_4xx(client, data, name, status, message):
    response = post(client, data, name)
    assert response.status_code == status
    assert message in unescape(text(response))


def test_past_the_size_limit_is_413_before_anything_is_read(client, monkeypatch):
    monkeypatch.setattr(read_view, "MAX_UPLOAD", 50_000)
    token = csrf(client, "/read")
    response = post(client, picture(3, size=(400, 400), fmt="PNG") + bytes(60_000), token=token)
    assert response.status_code == 413
    assert "The file is larger than" in text(response) and "nothing was read" in text(response)


def test_the_post_needs_the_csrf_token(client):
    response = client.post("/read", data={"image": (io.BytesIO(b"x"), "a.png")},
                           content_type="multipart/form-data")
    assert response.status_code == 400


def test_what_the_model_cannot_take_is_left_out_with_a_note():
    notes = []
    values = read_view.from_a1111({"prompt": "a cat", "Sampler": "Heun++ 9X",
                                   "Model": "sd_xl_base_1.0", "Size": "832x1216"}, notes)
    assert values == {"positivePrompt": "a cat", "numberResults": "1", "width": "832",
                      "height": "1216"}
    assert notes == ["Sampler “Heun++ 9X” is not one this model takes: left out.",
                     "Model “sd_xl_base_1.0” is not one this model takes: left out."]


def test_nothing_is_kept(client, app, catalogue):
    folder = app.config["RUNWARE_ARCHIVE_DIR"]
    client.get("/read")  # the first request makes the image store's folder
    before = sorted(os.listdir(folder)), catalogue.conn.execute(
        "SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM results)").fetchone()
    task, result = task_and_result()
    assert post(client, metadata.embed(picture(1, fmt="PNG"), "png", task, result)).status_code == 200
    after = sorted(os.listdir(folder)), catalogue.conn.execute(
        "SELECT (SELECT count(*) FROM tasks), (SELECT count(*) FROM results)").fetchone()
    assert after == before


def test_the_page_works_without_script_and_is_linked(client):
    page = text(client.get("/read"))
    assert 'enctype="multipart/form-data"' in page and 'type="file" name="image"' in page
    assert 'href="/read"' in text(client.get("/")) and 'href="/read"' in text(client.get("/new"))
