"""Reproducibility verdicts (no Flask): did a re-run give back its parent's images?

Each image of a re-run is paired with its parent's image of the same seed (or, when the
seeds differ, as after **New seed**, the parent's image in the same position) and judged:

- ``identical bytes``: the two files have the same SHA-256;
- ``visually identical``: different bytes, but the 64-bit difference hashes (dHash) of the
  two pictures are at most :data:`VISUAL_THRESHOLD` bits apart: a re-encoding, a different
  quality or format of the same picture;
- ``differs``: more bits apart than that (the distance is given);
- ``pending``: one of the two is not archived yet (or its file cannot be read);
- ``not archived``: one of the two never will be (its download failed or was refused).

The dHash (Krawetz, "Kind of like that", hackerfactor.com 2013): the picture in grey,
box-averaged down to 9×8, one bit per pixel saying whether it is brighter than its right
neighbour. It survives re-encoding and resizing and is computed with Pillow alone; each
image's hash is computed the first time a verdict needs it and kept in ``results.dhash``.
Measured on sandbox pictures (tests/test_verdict.py): re-encoding as JPEG q30–95, PNG or
WEBP, or halving the size, moves at most 1 bit; a different seed moves 19 or more.
"""

import contextlib
import sqlite3
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from archive import states

VISUAL_THRESHOLD = 6  # bits of 64; see the module docstring
IDENTICAL, VISUAL, DIFFERS, PENDING, UNAVAILABLE = (
    "identical bytes", "visually identical", "differs", "pending", "not archived")
HASH_SIZE = 8


def dhash(image):
    """The 64-bit difference hash of a Pillow image, as an int."""
    image.draft("L", (HASH_SIZE * 8, HASH_SIZE * 8))  # JPEG: decode at 1/8 scale or so
    grey = image.convert("L").resize((HASH_SIZE + 1, HASH_SIZE), Image.Resampling.BOX)
    pixels = grey.tobytes()  # one byte per pixel, row by row
    value = 0
    for row in range(HASH_SIZE):
        for col in range(HASH_SIZE):
            left = pixels[row * (HASH_SIZE + 1) + col]
            right = pixels[row * (HASH_SIZE + 1) + col + 1]
            value = (value << 1) | (left > right)
    return value


def dhash_file(path):
    """The dHash of the picture in the file at ``path`` (or the open binary file).

    :raises OSError: the file cannot be read or is not a picture.
    """
    with contextlib.ExitStack() as stack:
        if hasattr(path, "close"):
            stack.enter_context(path)  # an open file is closed with the image
        with Image.open(path) as image:
            return dhash(image)


def distance(a, b):
    """Hamming distance between two 64-bit hashes."""
    return (a ^ b).bit_count()


@dataclass
class Verdict:
    """The judgement on one image of a re-run (``parent`` None: nothing to compare)."""

    child: dict
    parent: dict = None
    matched_by: str = None  # "seed" or "position"
    kind: str = PENDING
    distance: int = None


def pair(child_results, parent_results):
    """``[(child, parent or None, "seed" | "position" | None)]`` for each child result."""
    by_seed = {}
    for result in parent_results:
        by_seed.setdefault(result["seed"], result)
    pairs = []
    for index, result in enumerate(child_results):
        same_seed = by_seed.get(result["seed"])
        if same_seed is not None:
            pairs.append((result, same_seed, "seed"))
        elif index < len(parent_results):
            pairs.append((result, parent_results[index], "position"))
        else:
            pairs.append((result, None, None))
    return pairs


def _archived(result):
    return result["archive_state"] == states.ARCHIVED and bool(result["sha256"])


def judge(child, parent, hash_of):
    """The verdict kind and distance for two result rows.

    :param hash_of: ``hash_of(result) -> int or None`` (None: the file cannot be read).
    """
    if not (_archived(child) and _archived(parent)):
        settled = any(r["archive_state"] not in (states.PENDING, states.ARCHIVED)
                      for r in (child, parent))
        return (UNAVAILABLE if settled else PENDING), None
    if child["sha256"] == parent["sha256"]:
        return IDENTICAL, 0
    a, b = hash_of(child), hash_of(parent)
    if a is None or b is None:
        return PENDING, None
    bits = distance(a, b)
    return (VISUAL if bits <= VISUAL_THRESHOLD else DIFFERS), bits


def verdicts(child_results, parent_results, hash_of):
    """A :class:`Verdict` for every image of a re-run, in the re-run's order."""
    out = []
    for child, parent, how in pair(child_results, parent_results):
        verdict = Verdict(child, parent, how)
        if parent is not None:
            verdict.kind, verdict.distance = judge(child, parent, hash_of)
        out.append(verdict)
    return out


class HashCache:
    """``hash_of`` for :func:`judge`: the stored ``results.dhash``, else computed from the
    file and stored (once; a concurrent writer computing the same value is harmless).

    :param catalogue: an :class:`archive.catalogue.Catalogue`.
    :param path_for: ``path_for(sha256, ext)``: the original, a path or a binary file
        (``ImageStore.open``).
    """

    def __init__(self, catalogue, path_for):
        self.catalogue, self.path_for = catalogue, path_for

    def __call__(self, result):
        if result.get("dhash"):
            return int(result["dhash"], 16)
        try:
            value = dhash_file(self.path_for(result["sha256"], result["file_ext"]))
        except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
            return None
        result["dhash"] = f"{value:016x}"
        try:
            with self.catalogue.write() as conn:
                conn.execute("UPDATE results SET dhash = ? WHERE id = ? AND dhash IS NULL",
                             (result["dhash"], result["id"]))
        except sqlite3.OperationalError:
            pass  # the catalogue is busy: the verdict stands, the hash is kept next time
        return value
