"""Several archived images as one zip, streamed: each image as ``/download/<imageUUID>``
serves it (the parameters embedded) beside its JSON sidecar (``/download/<imageUUID>.json``).

The zip is written to a sink that hands each finished piece to the response, so memory
holds one image at a time, never the archive: :class:`zipfile.ZipFile` writes to a stream
it cannot seek with data descriptors after each member. Images go in stored (JPEG, PNG and
WEBP are compressed already); sidecars deflated.
"""

import io
import json
import zipfile

from archive import metadata, states

ZIP_TYPE = "application/zip"


class _Sink(io.RawIOBase):
    """What :class:`zipfile.ZipFile` writes, kept until the generator hands it on."""

    def __init__(self):
        super().__init__()
        self.pieces = []

    def writable(self):
        return True

    def write(self, data):
        self.pieces.append(bytes(data))
        return len(data)

    def take(self):
        """Everything written since the last call."""
        out, self.pieces = b"".join(self.pieces), []
        return out


def _stamp(result):
    """The zip member's date: when the image was received (zip times have no zone)."""
    text = result.get("received_at") or "1980-01-01T00:00:00"
    day, clock = text[:10].split("-"), text[11:19].split(":")
    return tuple(int(x) for x in day + clock) if len(clock) == 3 else (1980, 1, 1, 0, 0, 0)


def stream(pairs, store):
    """The zip's bytes, piece by piece, for ``pairs`` of ``(task, result)``; a result
    that is not archived is left out and named in ``skipped.txt``."""
    sink, skipped = _Sink(), []
    with zipfile.ZipFile(sink, "w") as archive:
        for task, result in pairs:
            if result["archive_state"] != states.ARCHIVED or not result["sha256"]:
                skipped.append(f"{result['image_uuid']}: {result['archive_state']}")
                continue
            ext = result["file_ext"]
            with store.open(result["sha256"], ext) as f:
                data = metadata.embed(f.read(), ext, task, result)
            member = zipfile.ZipInfo(f"{result['image_uuid']}.{ext}", _stamp(result))
            archive.writestr(member, data, compress_type=zipfile.ZIP_STORED)
            yield sink.take()
            side = zipfile.ZipInfo(f"{result['image_uuid']}.json", _stamp(result))
            archive.writestr(side, json.dumps(metadata.sidecar(task, result), indent=2,
                                              ensure_ascii=False),
                             compress_type=zipfile.ZIP_DEFLATED)
            yield sink.take()
        if skipped:
            archive.writestr("skipped.txt", "Not archived, so not in this zip:\n"
                             + "\n".join(skipped) + "\n")
    yield sink.take()
