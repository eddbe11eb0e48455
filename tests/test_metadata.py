"""Parameters inside the downloaded file: AUTOMATIC1111's text in a PNG chunk, EXIF
UserComment and XMP in JPEG and WEBP, read back with Pillow (and exiftool when installed);
the pixels and the stored original untouched."""

import hashlib
import io
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from PIL import Image, ImageChops

from archive import metadata
from tests.imagehost import picture

# AUTOMATIC1111's own parser of the last line (modules/infotext_utils.py, re_param_code).
A1111_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')

PROMPT = "Glasshouse tea train platform, dawn — 日本語, \"quoted\""


def task_row(**params):
    sent = {"taskType": "imageInference", "taskUUID": "6f1c3a9e-0b7d-4c1e-9a55-0e2f6d1b7c01",
            "model": "runware:twinflow-z-image-turbo@0", "positivePrompt": PROMPT,
            "negativePrompt": "blurry, low quality", "width": 1024, "height": 768, "steps": 4,
            "CFGScale": 3.5, "scheduler": "DPM++ 2M Karras", "seed": 22452,
            "lora": [{"model": "civitai:12345@678", "weight": 0.75}], "includeCost": True,
            "webhookURL": "https://archive.example/webhooks/runware/6f1c", **params}
    return {"task_uuid": sent["taskUUID"], "model": sent["model"], "provider": "sandbox",
            "params": json.dumps(sent), "parent_task_uuid": None, "rerun_mode": None,
            "created_at": "2026-03-29T10:00:00.000000Z"}


def result_row(data, ext):
    return {"image_uuid": "0b9e8f52-3a41-4d7c-8e0f-6a5b4c3d2e1f", "seed": 22452,
            "cost": 0.0006, "nsfw": None, "sha256": hashlib.sha256(data).hexdigest(),
            "file_ext": ext, "file_size": len(data), "img_width": 96, "img_height": 64,
            "received_at": "2026-03-29T10:00:01.000000Z",
            "archived_at": "2026-03-29T10:00:02.000000Z"}


def parse_a1111(text):
    """What A1111's "PNG Info" makes of the text: prompt, negative prompt, fields."""
    *prompt_lines, last = text.split("\n")
    negative = [line for line in prompt_lines if line.startswith("Negative prompt: ")]
    prompt = "\n".join(line for line in prompt_lines if line not in negative)
    fields = {k: json.loads(v) if v.startswith('"') else v
              for k, v in A1111_PARAM.findall(last)}
    return prompt, negative[0][len("Negative prompt: "):] if negative else "", fields


def test_the_text_is_automatic1111s_format():
    data = picture()
    text = metadata.parameters_text(task_row(), result_row(data, "jpg"))
    prompt, negative, fields = parse_a1111(text)
    assert (prompt, negative) == (PROMPT, "blurry, low quality")
    assert fields == {
        "Steps": "4", "Sampler": "DPM++ 2M Karras", "CFG scale": "3.5", "Seed": "22452",
        "Size": "1024x768", "Model": "runware:twinflow-z-image-turbo@0",
        "Lora": "civitai:12345@678:0.75", "Task UUID": "6f1c3a9e-0b7d-4c1e-9a55-0e2f6d1b7c01",
        "Image UUID": "0b9e8f52-3a41-4d7c-8e0f-6a5b4c3d2e1f", "Cost": "0.0006",
        "Provider": "sandbox"}
    assert "webhook" not in text.lower()


def test_parameters_left_out_carry_the_defaults_runware_used():
    params = json.loads(task_row()["params"])
    for name in ("negativePrompt", "steps", "scheduler", "lora", "CFGScale", "width", "height"):
        del params[name]
    task = dict(task_row(), params=json.dumps(params))
    data = picture("PNG")
    text = metadata.parameters_text(task, result_row(data, "png"))
    _, negative, fields = parse_a1111(text)
    assert negative == ""
    assert (fields["Steps"], fields["CFG scale"], fields["Size"]) == ("4", "0", "1024x1024")
    # No value is claimed where the model chooses one the sources do not name.
    assert not {"Sampler", "Lora", "Acceleration"} & fields.keys()
    sidecar = metadata.sidecar(task, result_row(data, "png"))
    assert "steps" not in sidecar["params"]  # the request as sent stays as sent
    assert sidecar["defaults"] == {"width": 1024, "height": 1024, "steps": 4, "CFGScale": 0,
                                   "numberResults": 1, "outputType": "URL",
                                   "outputFormat": "JPG", "outputQuality": 95,
                                   "safety.checkContent": False}
    out = metadata.embed(data, "png", task, result_row(data, "png"))
    with Image.open(io.BytesIO(out)) as im:
        assert "Steps: 4" in im.text["parameters"]
        xmp = ET.fromstring(im.text["XML:com.adobe.xmp"])
    found = xmp.find(".//{urn:runware-archive:1.0/}defaults")
    assert json.loads(found.text)["steps"] == 4


def test_sent_parameters_win_over_the_defaults():
    text = metadata.parameters_text(task_row(steps=9, CFGScale=1.5), result_row(picture(), "jpg"))
    fields = parse_a1111(text)[2]
    assert (fields["Steps"], fields["CFG scale"]) == ("9", "1.5")


def embedded(fmt, ext, **options):
    data = picture(fmt, **options)
    task, result = task_row(), result_row(data, ext)
    out = metadata.embed(data, ext, task, result)
    return data, out, metadata.parameters_text(task, result)


def same_pixels(a, b):
    with Image.open(io.BytesIO(a)) as x, Image.open(io.BytesIO(b)) as y:
        return x.size == y.size and ImageChops.difference(
            x.convert("RGBA"), y.convert("RGBA")).getbbox() is None


def user_comment(im):
    raw = im.getexif().get_ifd(0x8769)[0x9286]
    assert raw[:8] == b"UNICODE\x00"
    return raw[8:].decode("utf-16-be")


def xmp_description(raw):
    root = ET.fromstring(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    ns = {"rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
          "dc": "http://purl.org/dc/elements/1.1/"}
    desc = root.find(".//rdf:Description", ns)
    assert desc.get("{urn:runware-archive:1.0/}seed") == "22452"
    return desc.find("dc:description/rdf:Alt/rdf:li", ns).text


def test_png_carries_a_parameters_text_chunk_and_xmp():
    data, out, text = embedded("PNG", "png")
    with Image.open(io.BytesIO(out)) as im:
        im.load()
        assert im.info["parameters"] == text
        assert xmp_description(im.info["XML:com.adobe.xmp"]) == text
    assert same_pixels(data, out)


def test_a_latin1_prompt_goes_in_a_plain_text_chunk():
    data = picture("PNG")
    task = task_row(positivePrompt="a lighthouse at dawn")
    out = metadata.embed(data, "png", task, result_row(data, "png"))
    assert b"tEXtparameters\x00a lighthouse at dawn" in out


@pytest.mark.parametrize("fmt, ext, options", [
    ("JPEG", "jpg", {"quality": 90}), ("WEBP", "webp", {"quality": 80}),
    ("WEBP", "webp", {"lossless": True}),
], ids=["jpeg", "webp lossy", "webp lossless"])
def test_jpeg_and_webp_carry_exif_user_comment_and_xmp(fmt, ext, options):
    data, out, text = embedded(fmt, ext, **options)
    with Image.open(io.BytesIO(out)) as im:
        im.load()
        assert im.format == fmt
        assert user_comment(im) == text
        assert xmp_description(im.info["xmp"]) == text
        assert im.getexif()[0x0131] == "runware-archive"
    assert same_pixels(data, out)


def test_the_original_bytes_are_never_changed():
    data = picture("JPEG")
    before = hashlib.sha256(data).hexdigest()
    metadata.embed(data, "jpg", task_row(), result_row(data, "jpg"))
    assert hashlib.sha256(data).hexdigest() == before


def test_the_sidecar_holds_every_parameter_but_our_urls():
    data = picture()
    sidecar = metadata.sidecar(task_row(), result_row(data, "jpg"))
    assert sidecar["params"]["lora"] == [{"model": "civitai:12345@678", "weight": 0.75}]
    assert "webhookURL" not in sidecar["params"]
    assert sidecar["sha256"] == hashlib.sha256(data).hexdigest()
    assert sidecar["parameters"].startswith(PROMPT)


@pytest.mark.skipif(not shutil.which("exiftool"), reason="exiftool not installed "
                    "(apt-get install libimage-exiftool-perl)")
@pytest.mark.parametrize("fmt, ext, tag", [("PNG", "png", "Parameters"),
                                           ("JPEG", "jpg", "UserComment"),
                                           ("WEBP", "webp", "UserComment")])
def test_exiftool_reads_the_parameters(tmp_path, fmt, ext, tag):
    _, out, text = embedded(fmt, ext)
    path = tmp_path / f"image.{ext}"
    path.write_bytes(out)
    found = json.loads(subprocess.run(["exiftool", "-json", "-a", "-G1", str(path)],
                                      check=True, capture_output=True, text=True).stdout)[0]
    values = {k.split(":")[-1]: v for k, v in found.items()}
    assert values[tag] == text
    assert values["Description"] == text
    assert not any("Warning" in k for k in found), found
