"""The image store (no Flask): originals by content address, WEBP thumbnails, inline images.

Names, in the data folder (:mod:`archive.filestore`) or a bucket (:mod:`archive.s3store`)::

    images/ab/<sha256>.<ext>    the original, byte for byte as delivered (ext: jpg, png, webp)
    thumbs/ab/<sha256>.webp     its thumbnail, ~384 px on the long side, made once
    images/.tmp/                (data folder) downloads and uploads in progress, swept

Identical bytes are stored once. A file enters the store only complete and verified: it is
received into a local temporary file, checked with Pillow (JPEG, PNG or WEBP only, a sane
size, no decompression bombs, fully decodable), hashed, and only then published under its
name in one step (``os.replace``; one PUT checked against its sha256), so a reader (or a
crash) never sees half a file.
"""

import abc
import base64
import binascii
import contextlib
import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from archive.catalogue import INLINE_FIELDS, archived_columns
from archive.states import FAILED

# Pillow format -> file extension, and what we serve each extension as.
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
# Runware's sizes stop at 2048 px; these limits leave room and still cap a decode at
# ~100 MB of memory, so a small file claiming 50 000 x 50 000 pixels is refused unread.
MAX_SIDE = 8192
MAX_PIXELS = 25_000_000
THUMB_SIDE = 384
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
DATA_URI = re.compile(r"^data:(?:image/[A-Za-z0-9.+-]+)?(?:;[^,;]*)*;base64,", re.I)
TEMP_MAX_AGE = 3600  # seconds after which a leftover temporary file is swept


class BadImage(ValueError):
    """Bytes refused as an image; the message says why (it goes to ``archive_error``)."""


@dataclass(frozen=True)
class StoredImage:
    """An original in the store."""

    sha256: str
    ext: str
    size: int
    width: int
    height: int

    @classmethod
    def recorded(cls, row):
        """The file a catalogue row records (an upload's: ``sha256``, ``file_ext``,
        ``file_size``, ``img_width``, ``img_height``)."""
        return cls(row["sha256"], row["file_ext"], row["file_size"], row["img_width"],
                   row["img_height"])


def inspect_image(path):
    """The ``(ext, width, height)`` of the image file at ``path``.

    :raises BadImage: not JPEG/PNG/WEBP, too large in pixels, or damaged/truncated.
    """
    try:
        with Image.open(path, formats=list(EXTENSIONS)) as im:
            fmt, (width, height) = im.format, im.size
            check_dimensions(width, height)
            im.verify()
        with Image.open(path, formats=list(EXTENSIONS)) as im:
            im.load()
    except BadImage:
        raise
    except Image.DecompressionBombError as exc:
        raise BadImage(f"decompression bomb refused: {exc}") from None
    except UnidentifiedImageError:
        raise BadImage("not an image (no JPEG, PNG or WEBP data)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # Pillow's ways to say "damaged"
        raise BadImage(f"damaged image: {exc}") from None
    return EXTENSIONS[fmt], width, height


def check_dimensions(width, height):
    """Refuse sizes no generation has: the decompression-bomb guard, before decoding."""
    if width < 1 or height < 1:
        raise BadImage(f"image has no pixels ({width}x{height})")
    if max(width, height) > MAX_SIDE or width * height > MAX_PIXELS:
        raise BadImage(f"decompression bomb refused: {width}x{height} pixels is over the "
                       f"limit ({MAX_SIDE} px a side, {MAX_PIXELS} pixels)")


def hash_file(path):
    """The sha256 (hex) of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ImageStore(abc.ABC):
    """The content-addressed originals and thumbnails, wherever they are kept.

    This class holds every promise of the store (verified before kept, stored once, deleted
    only when unreferenced, swept); a subclass says only how to keep a complete file under a
    name (``images/ab/<sha256>.<ext>``, ``thumbs/ab/<sha256>.webp``) and read it back:
    :class:`archive.filestore.FileStore` in the data folder, :class:`archive.s3store.S3Store`
    in a bucket. Downloads and uploads in progress are staged in ``images/.tmp`` of the data
    folder for both, so a half-received file is never visible under a name.

    :param max_bytes: the largest original accepted (downloads, uploads, inline data).
    """

    #: where the bytes are (``file`` or ``s3``): said by /healthz, never branched on.
    kind = None

    def __init__(self, data_dir, *, max_bytes=DEFAULT_MAX_BYTES):
        self.root = os.path.abspath(data_dir)
        self.tmp = os.path.join(self.root, "images", ".tmp")
        self.max_bytes = max_bytes
        os.makedirs(self.tmp, exist_ok=True)

    # -- what a subclass provides (names are relative: images/ab/<sha256>.<ext>) ----------

    @abc.abstractmethod
    def _exists(self, name):
        """Whether ``name`` is stored."""

    @abc.abstractmethod
    def _put(self, tmp_path, name, sha256):
        """Keep the complete local file ``tmp_path`` as ``name`` (all or nothing, durable);
        ``sha256`` is the hex digest of its bytes. ``tmp_path`` may be moved away; the caller
        removes it if it is still there."""

    @abc.abstractmethod
    def _open(self, name):
        """A seekable binary file of ``name``. :raises FileNotFoundError: not stored."""

    @abc.abstractmethod
    def _delete(self, name):
        """Remove ``name`` (nothing when it is absent)."""

    @abc.abstractmethod
    def _touch(self, name):
        """Make ``name`` count as just stored (the deletion grace starts again)."""

    @abc.abstractmethod
    def listing(self, prefix):
        """``[(name, mtime epoch seconds)]`` of every stored name starting with ``prefix``."""

    def _publish(self, tmp_path, name, sha256):
        """Keep a verified original: stored once, and if it already is, its mtime renewed
        (a deletion's grace starts again, as for a new file)."""
        if self._exists(name):
            self._touch(name)
        else:
            self._put(tmp_path, name, sha256)

    @abc.abstractmethod
    def source(self, name):
        """What ``flask.send_file`` serves ``name`` from: a path or a binary file."""

    def presigned_url(self, name, *, expires):
        """A URL a browser may GET ``name`` from for ``expires`` seconds, or None when the
        store has no such thing (then the service streams the bytes itself)."""
        return None

    def check(self):
        """Raise unless the store can be reached (``/healthz``); the data folder always can."""

    # -- uploads straight into the store (a store without them answers None / nothing) ----

    def upload_endpoint(self, task_uuid, *, expires):
        """``(url, target)``: a URL the provider may PUT one image of ``task_uuid`` to, and
        that URL without its signature (what the sandbox's allowlist compares); or None."""
        return None

    def incoming_tasks(self):
        """The tasks with an image PUT straight into the store, not yet taken."""
        return []

    def take_incoming(self, task_uuid):
        """The image PUT for ``task_uuid``, copied into a new temporary file (its path;
        the caller hands it to :meth:`add_file`), or None when there is none."""
        return None

    def drop_incoming(self, task_uuid):
        """Forget the image PUT for ``task_uuid`` (taken, or its task gone)."""

    # -- the store's promises, the same wherever the bytes are ---------------------------

    @staticmethod
    def original_name(sha256, ext):
        """The name of the original with ``sha256``."""
        return f"images/{sha256[:2]}/{sha256}.{ext}"

    @staticmethod
    def thumb_name(sha256):
        """The name of its thumbnail."""
        return f"thumbs/{sha256[:2]}/{sha256}.webp"

    def has(self, sha256, ext):
        """Whether the original is in the store."""
        return self._exists(self.original_name(sha256, ext))

    def open(self, sha256, ext):
        """The original as a seekable binary file. :raises FileNotFoundError: absent."""
        return self._open(self.original_name(sha256, ext))

    def temp_file(self):
        """A new local temporary file: ``(file object, path)``."""
        fd, path = tempfile.mkstemp(prefix="part-", suffix=".tmp", dir=self.tmp)
        return os.fdopen(fd, "wb"), path

    def add_file(self, tmp_path, *, sha256=None):
        """Verify the temporary file at ``tmp_path`` and move it into the store.

        The temporary file is consumed: moved into place, or removed when the same
        bytes are already stored or when it is refused.

        :raises BadImage: see :func:`inspect_image`.
        """
        try:
            size = os.path.getsize(tmp_path)
            if size > self.max_bytes:
                raise BadImage(f"{size} bytes is over the {self.max_bytes}-byte limit")
            ext, width, height = inspect_image(tmp_path)
            sha256 = sha256 or hash_file(tmp_path)
            self._publish(tmp_path, self.original_name(sha256, ext), sha256)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_path)
        return StoredImage(sha256, ext, size, width, height)

    def add_bytes(self, data):
        """Store ``data`` (bytes) like :meth:`add_file`; returns a :class:`StoredImage`."""
        if len(data) > self.max_bytes:
            raise BadImage(f"{len(data)} bytes is over the {self.max_bytes}-byte limit")
        f, path = self.temp_file()
        try:
            with f:
                f.write(data)
        except BaseException:
            os.unlink(path)
            raise
        return self.add_file(path, sha256=hashlib.sha256(data).hexdigest())

    def thumbnail(self, sha256, ext):
        """The thumbnail's name, made from the original the first time it is asked for."""
        name = self.thumb_name(sha256)
        if self._exists(name):
            return name
        f, tmp = self.temp_file()
        try:
            with f, self.open(sha256, ext) as original:
                _make_thumbnail(original, f)
            with open(tmp, "rb") as made:
                digest = hashlib.file_digest(made, "sha256").hexdigest()
            self._put(tmp, name, digest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return name

    def open_thumbnail(self, sha256, ext):
        """The thumbnail (made if need be) as a binary file."""
        return self._open(self.thumbnail(sha256, ext))

    def hashes(self):
        """The sha256 of every original stored (a generator)."""
        for name, _ in self.listing("images/"):
            parts = name.split("/")
            sha256 = parts[-1].split(".")[0]
            if len(parts) == 3 and parts[1] == sha256[:2] and SHA256_PATTERN.match(sha256):
                yield sha256

    def delete_unreferenced(self, catalogue, sha256, *, grace=10.0):
        """Delete the original and thumbnail of ``sha256`` if nothing references it.

        Checked inside a write transaction, so no result can be committed against the
        file meanwhile. But an inline image is stored *before* its ingest transaction
        (the ``columns_for`` hook), so a file stored (or stored again) in the last ``grace``
        seconds is kept: its row may be about to commit. That wait is bounded by the
        catalogue's busy timeout (3 s by default), hence 10 s.
        :returns: whether anything was deleted.
        """
        if not SHA256_PATTERN.match(sha256):
            return False
        with catalogue.write() as conn:
            if _referenced(conn, sha256):
                return False
            found = [(name, mtime) for name, mtime in
                     self.listing(f"images/{sha256[:2]}/{sha256}.")]
            if any(time.time() - mtime < grace for _, mtime in found):
                return False
            for name in [*(name for name, _ in found), self.thumb_name(sha256)]:
                self._delete(name)
        return bool(found)

    def sweep_orphans(self, catalogue, *, older_than=TEMP_MAX_AGE):
        """Delete originals no result or upload references, stored over ``older_than``
        seconds ago: those a deletion had to leave in its grace period, or whose ingest
        never committed. Returns how many were deleted."""
        removed = 0
        for sha256 in sorted(set(self.hashes())):
            if not _referenced(catalogue.conn, sha256):
                removed += self.delete_unreferenced(catalogue, sha256, grace=older_than)
        return removed

    def sweep_temp(self, older_than=TEMP_MAX_AGE):
        """Remove temporary files left by a killed process; returns how many."""
        removed, cutoff = 0, time.time() - older_than
        for name in os.listdir(self.tmp):
            path = os.path.join(self.tmp, name)
            with contextlib.suppress(FileNotFoundError):
                if os.path.getmtime(path) < cutoff:
                    os.unlink(path)
                    removed += 1
        return removed


def _make_thumbnail(original, out):
    """Write the WEBP thumbnail of the image file ``original`` to the file ``out``."""
    with Image.open(original, formats=list(EXTENSIONS)) as im:
        im.draft("RGB", (THUMB_SIDE, THUMB_SIDE))  # JPEG: decode at a fraction of size
        im.thumbnail((THUMB_SIDE, THUMB_SIDE))
        if im.mode not in ("RGB", "RGBA"):
            im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
        im.save(out, "WEBP", quality=80, method=4)


def _referenced(conn, sha256):
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM results WHERE sha256 = ?)"
        " OR EXISTS (SELECT 1 FROM uploads WHERE sha256 = ?)", (sha256, sha256),
    ).fetchone()
    return bool(row[0])


def decode_inline(item, max_bytes):
    """The image bytes of an ``imageBase64Data`` or ``imageDataURI`` result item.

    :raises BadImage: not base64, not an image data URI, or over ``max_bytes`` (checked
        on the text's length before anything is decoded).
    """
    if "imageDataURI" in item:
        text = item["imageDataURI"]
        match = DATA_URI.match(text)
        if not match:
            raise BadImage("imageDataURI is not a base64 image data URI")
        text = text[match.end():]
    else:
        text = item["imageBase64Data"]
    if len(text) > (max_bytes + 2) // 3 * 4 + len(text) // 64 + 4:  # + room for newlines
        raise BadImage(f"inline image is over the {max_bytes}-byte limit")
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadImage(f"inline image is not valid base64: {exc}") from None
    if len(data) > max_bytes:
        raise BadImage(f"inline image is over the {max_bytes}-byte limit")
    return data


def inline_image_columns(store):
    """The ``columns_for=`` hook for :meth:`Catalogue.ingest`: stores an inline image and
    returns the columns that mark its result archived (:func:`archived_columns`, as every
    archived image is marked) or failed, with the reason. The row is inserted with them:
    it and its archive state are one statement of one transaction."""

    def columns_for(item):
        if not any(key in item for key in INLINE_FIELDS):
            return {}
        try:
            stored = store.add_bytes(decode_inline(item, store.max_bytes))
        except BadImage as exc:
            return {"archive_state": FAILED, "archive_error": f"inline image refused: {exc}",
                    "archive_attempts": 1}
        return dict(archived_columns(stored), archive_attempts=1)

    return columns_for


def recorded_extension(conn, sha256):
    """The file extension the catalogue recorded for ``sha256`` (results, then uploads), or
    None: a file is served with our own record of its type, never the provider's."""
    row = conn.execute("SELECT file_ext FROM results WHERE sha256 = ? AND file_ext IS NOT NULL"
                       " UNION ALL SELECT file_ext FROM uploads WHERE sha256 = ? LIMIT 1",
                       (sha256, sha256)).fetchone()
    return row[0] if row else None
