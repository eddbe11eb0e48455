"""The image store in the data folder: each name is a file under it.

A file is published by ``os.replace`` of the complete, verified temporary file (same file
system, so the move is atomic) after an fsync of the file and then of its folder: an
archived row never points at a file a power cut took away.
"""

import contextlib
import os

from archive.images import ImageStore


class FileStore(ImageStore):
    """Originals and thumbnails as files under ``data_dir`` (``images/``, ``thumbs/``)."""

    kind = "file"

    def __init__(self, data_dir, **kwargs):
        super().__init__(data_dir, **kwargs)
        self.images = os.path.join(self.root, "images")
        self.thumbs = os.path.join(self.root, "thumbs")

    def _file(self, name):
        return os.path.join(self.root, *name.split("/"))

    def path(self, sha256, ext):
        """Where the original with ``sha256`` lives."""
        return self._file(self.original_name(sha256, ext))

    def thumb_path(self, sha256):
        """Where its thumbnail lives."""
        return self._file(self.thumb_name(sha256))

    def _exists(self, name):
        return os.path.exists(self._file(name))

    def _put(self, tmp_path, name, sha256):
        dest = self._file(name)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(tmp_path, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, dest)
        fd = os.open(os.path.dirname(dest), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _open(self, name):
        return open(self._file(name), "rb")

    def _delete(self, name):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._file(name))

    def _touch(self, name):
        with contextlib.suppress(FileNotFoundError):
            os.utime(self._file(name))

    def listing(self, prefix):
        top, _, start = prefix.rpartition("/")
        folders = [top] if top.count("/") == 1 else [
            f"{top}/{d}" for d in sorted(_dirs(self._file(top))) if len(d) == 2]
        found = []
        for folder in folders:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                for entry in os.scandir(self._file(folder)):
                    name = f"{folder}/{entry.name}"
                    if entry.is_file() and name.startswith(prefix):
                        with contextlib.suppress(FileNotFoundError):
                            found.append((name, entry.stat().st_mtime))
        return found

    def source(self, name):
        return self._file(name)


def _dirs(folder):
    with contextlib.suppress(FileNotFoundError):
        return [e.name for e in os.scandir(folder) if e.is_dir()]
    return []
