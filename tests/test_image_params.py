"""archive.image_params: what archive.metadata writes is read back exactly, from PNG, JPEG and
WEBP; AUTOMATIC1111's own files are read as A1111 reads them; anything else is refused
without decoding a pixel."""

import io
import json
import struct
import zlib

import pytest
from PIL import Image, PngImagePlugin

from archive import image_params, metadata
from tests.history_helpers import picture

# A1111's own example, from the docstring of parse_generation_parameters
# (AUTOMATIC1111/stable-diffusion-webui, modules/infotext_utils.py).
A1111_TEXT = (
    "girl with an artist's beret, determined, blue eyes, desert scene, computer monitors,"
    " heavy makeup, by Alphonse Mucha and Charlie Bowater, ((eyeshadow)), (coquettish),"
    " detailed, intricate\n"
    "Negative prompt: ugly, fat, obese, chubby, (((deformed))), [blurry], bad anatomy,"
    " disfigured, poorly drawn face, mutation, mutated, (extra_limb), (ugly),"
    " (poorly drawn hands), messy drawing\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 965400086, Size: 512x512,"
    " Model hash: 45dee52b")


def task_and_result(prompt='a harbor, "at" dusk\nsecond line', negative="blurry, text"):
    params = {"taskType": "imageInference", "taskUUID": "7f0c-task", "positivePrompt": prompt,
              "negativePrompt": negative, "width": 1024, "height": 768, "steps": 4,
              "CFGScale": 1.5, "model": "runware:twinflow-z-image-turbo@0",
              "webhookURL": "http://127.0.0.1/webhooks/runware/x?token=secret"}
    task = {"params": json.dumps(params), "model": params["model"], "task_uuid": "7f0c-task",
            "provider": "sandbox", "parent_task_uuid": None, "rerun_mode": None}
    return task, {"seed": 22452, "image_uuid": "9e1d-image", "cost": 0.0006, "sha256": "ab"}


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp")])
@pytest.mark.parametrize("prompt", ['a harbor, "at" dusk\nsecond line', "港の夕暮れ, ünïcode"])
def test_what_metadata_writes_is_read_back_exactly(fmt, ext, prompt):
    task, result = task_and_result(prompt)
    data = metadata.embed(picture(1, fmt=fmt), ext, task, result)
    reading = image_params.read(data)
    assert (reading.format, reading.width, reading.height) == (fmt, 256, 192)
    assert reading.text == metadata.parameters_text(task, result)
    assert reading.request == metadata.sent_params(task)  # the request as sent, exactly
    assert reading.ids == {"taskUUID": "7f0c-task", "imageUUID": "9e1d-image",
                           "seed": "22452", "model": "runware:twinflow-z-image-turbo@0"}
    fields = reading.fields
    assert fields["prompt"] == prompt and fields["negative"] == "blurry, text"
    assert (fields["Steps"], fields["CFG scale"], fields["Seed"], fields["Size"]) == \
        ("4", "1.5", "22452", "1024x768")


def test_an_a1111_png_is_read_as_a1111_reads_it():
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", A1111_TEXT)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "PNG", pnginfo=info)
    reading = image_params.read(buffer.getvalue())
    assert reading.request is None and reading.found
    assert reading.fields["prompt"].startswith("girl with an artist's beret")
    assert reading.fields["negative"].endswith("messy drawing")
    assert reading.fields["Sampler"] == "Euler a" and reading.fields["Seed"] == "965400086"
    assert reading.fields["Model hash"] == "45dee52b"


@pytest.mark.parametrize("encoding,order", [("utf-16-be", "big"), ("utf-16-le", "little")])
def test_an_a1111_jpeg_user_comment_in_either_byte_order(encoding, order):
    """A1111 writes JPEG and WEBP text with piexif (big-endian UTF-16); some tools write it
    little-endian, in the EXIF's own byte order."""
    exif = Image.Exif()
    exif.get_ifd(metadata.EXIF_IFD)[metadata.USER_COMMENT] = \
        b"UNICODE\x00" + A1111_TEXT.encode(encoding)
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "JPEG", exif=exif.tobytes())
    reading = image_params.read(buffer.getvalue())
    assert reading.text == A1111_TEXT, order


def test_quoted_values_and_a_prompt_without_pairs():
    fields = image_params.parse_parameters(
        'a cat\nSteps: 4, Sampler: "x, y", CFG scale: 3.5, Lora: "a:1, b:0.5"')
    assert fields["Sampler"] == "x, y" and fields["Lora"] == "a:1, b:0.5"
    assert image_params.parse_parameters("just a prompt, Steps: 4") == \
        {"prompt": "just a prompt, Steps: 4", "negative": ""}


def test_an_image_without_parameters_is_found_empty():
    reading = image_params.read(picture(2, fmt="PNG"))
    assert not reading.found and reading.fields == {} and reading.request is None


def png_claiming(width, height):
    """A PNG of nothing but a header that claims ``width`` × ``height``."""
    def chunk(kind, payload):
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return metadata.PNG_SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize("data", [b"", b"hello", b"GIF89a" + bytes(20), b"\x89PNG\r\n\x1a\n",
                                  picture(1, fmt="JPEG")[:40], png_claiming(100000, 100000),
                                  png_claiming(20000, 20000)])
def test_anything_else_is_not_an_image(data):
    with pytest.raises(image_params.NotAnImage):
        image_params.read(data)


@pytest.mark.parametrize("raw,text", [
    (b"UNICODE\x00\x00h\x00i", "hi"), (b"ASCII\x00\x00\x00hello\x00", "hello"),
    ("plain", "plain"), (b"UNICODE\x00", None), (b"\x00" * 8 + b"\xff\xfe", "\ufffd\ufffd"),
])
def test_user_comments(raw, text):
    assert image_params.user_comment(raw) == text
