"""The sandbox's pictures: a deterministic Pillow drawing of a task's inputs, never a real one.

Everything that would change a real generation (prompts, seed, size, steps, CFGScale,
scheduler, LoRAs) goes into one SHA-256, which seeds the layout; the same inputs therefore give
a byte-identical file (every encoder option is set explicitly and no metadata is written),
and another seed a different picture. It is cheap on purpose: a 4×4 colour field upscaled
bicubically, a seeded noise tile, a few shapes, and a "SANDBOX" banner, so 1024×1024 takes
tens of milliseconds (see ``tests/test_sandbox.py``), not a per-pixel Python loop.
"""

import hashlib
import io
import json
import random

from PIL import Image, ImageDraw, ImageFont

# outputFormat -> (Pillow format, file extension, content type)
FORMATS = {
    "JPG": ("JPEG", "jpg", "image/jpeg"),
    "PNG": ("PNG", "png", "image/png"),
    "WEBP": ("WEBP", "webp", "image/webp"),
}
RENDER_FIELDS = ("positivePrompt", "negativePrompt", "width", "height", "steps", "CFGScale",
                 "scheduler", "lora")
DEFAULT_QUALITY = 95  # runware-api.md §2
NOISE_TILE = 48


def fingerprint(task, seed):
    """The SHA-256 (hex) of everything that shapes the picture, canonically encoded."""
    inputs = {name: task.get(name) for name in RENDER_FIELDS}
    inputs["seed"] = seed
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _colour(rng, low=0, high=255):
    return tuple(rng.randint(low, high) for _ in range(3))


def _background(rng, width, height, contrast):
    """A smooth colour field: a seeded 4×4 image scaled up, then a seeded noise tile."""
    field = Image.new("RGB", (4, 4))
    field.putdata([_colour(rng, 20, 235) for _ in range(16)])
    image = field.resize((width, height), Image.Resampling.BICUBIC)
    noise = Image.frombytes("L", (NOISE_TILE, NOISE_TILE), rng.randbytes(NOISE_TILE ** 2))
    noise = noise.resize((width, height), Image.Resampling.BILINEAR).convert("RGB")
    return Image.blend(image, noise, 0.08 + 0.1 * contrast)


def _shapes(draw, rng, width, height, count, angular):
    """``count`` seeded ellipses or polygons (the scheduler decides which)."""
    for _ in range(count):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randint(min(width, height) // 20, min(width, height) // 4)
        fill, outline = _colour(rng), _colour(rng)
        if angular:
            points = [(x + rng.randint(-r, r), y + rng.randint(-r, r)) for _ in range(3)]
            draw.polygon(points, fill=fill, outline=outline)
        else:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=fill, outline=outline,
                         width=max(1, r // 12))


def _label(draw, width, height, seed):
    """The banner that keeps a sandbox picture from ever passing for a real one."""
    band = max(24, height // 8)
    top = height - band
    draw.rectangle((0, top, width, height), fill=(0, 0, 0))
    font = ImageFont.load_default(size=max(10, band * 6 // 10))
    # Centred, so a square thumbnail cropped from a wide picture still shows it.
    draw.text((width // 2, top + band // 2), "SANDBOX", fill=(255, 214, 0), font=font,
              anchor="mm")
    small = ImageFont.load_default(size=max(8, band // 4))
    draw.text((width - band // 4, top + band // 2), f"seed {seed}", fill=(230, 230, 230),
              font=small, anchor="rm")


def render(task, seed):
    """The picture for ``task`` (Runware field names) and ``seed``, as an RGB image."""
    digest = fingerprint(task, seed)
    rng = random.Random(int(digest, 16))
    width, height = task["width"], task["height"]
    contrast = min(task.get("CFGScale", 0) or 0, 10) / 10
    image = _background(rng, width, height, contrast)
    draw = ImageDraw.Draw(image)
    angular = sum(map(ord, task.get("scheduler") or "Default")) % 2 == 1
    _shapes(draw, rng, width, height, 3 + 2 * (task.get("steps") or 4), angular)
    _label(draw, width, height, seed)
    return image


def encode(image, output_format="JPG", quality=None):
    """Encode ``image`` with every option explicit, so equal pixels give equal bytes.

    :param output_format: ``JPG``, ``PNG`` or ``WEBP`` (any case).
    :param quality: ``outputQuality`` (20–99) for JPG and WEBP; PNG is lossless.
    """
    kind = FORMATS[output_format.upper()][0]
    quality = quality or DEFAULT_QUALITY
    buffer = io.BytesIO()
    if kind == "JPEG":
        image.save(buffer, "JPEG", quality=quality, subsampling=2, optimize=False,
                   progressive=False, dpi=(72, 72))
    elif kind == "PNG":
        image.save(buffer, "PNG", compress_level=1, optimize=False)
    else:
        image.save(buffer, "WEBP", quality=quality, method=0, lossless=False, exact=False)
    return buffer.getvalue()


def render_bytes(task, seed):
    """The encoded file for ``task`` and ``seed`` in the task's outputFormat and quality."""
    return encode(render(task, seed), task.get("outputFormat") or "JPG",
                  task.get("outputQuality"))


def extension(output_format):
    """The file extension for an outputFormat (``jpg``, ``png``, ``webp``)."""
    return FORMATS[(output_format or "JPG").upper()][1]


def content_type(output_format):
    """The content type for an outputFormat."""
    return FORMATS[(output_format or "JPG").upper()][2]
