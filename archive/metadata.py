"""Generation parameters inside the downloaded file, and beside it (no Flask).

The stored original is never changed: its sha256 proves it is what the provider sent. The
download offered to users is a copy with the parameters added as metadata blocks, spliced
into the byte stream so the pixels are never re-encoded:

* PNG: a ``parameters`` text chunk (tEXt, or iTXt when not Latin-1) in AUTOMATIC1111's
  format, plus XMP (``XML:com.adobe.xmp`` iTXt);
* JPEG: EXIF ``UserComment`` (``UNICODE`` + UTF-16 in the EXIF byte order, as A1111 and
  exiftool read it) in an APP1 segment, plus an XMP APP1 segment;
* WEBP: EXIF and XMP chunks (the file is made extended, ``VP8X``, if it was simple).

AUTOMATIC1111's text ("PNG Info" reads it)::

    <prompt>
    Negative prompt: <negative prompt>
    Steps: 4, Sampler: Euler, CFG scale: 3.5, Seed: 22452, Size: 1024x768, Model: runware:…

A parameter the task left out is written with the value Runware used for it
(:func:`protocol.defaults.defaults_for`: steps 4, CFG scale 0, 1024×1024, …), so the file
says what the image was made with; one the model chooses with no documented value (the
scheduler) is left out. The sidecar JSON (:func:`sidecar`) and the XMP keep the request as
sent and, apart, ``defaults``: what was filled in.
"""

import io
import json
import re
import struct
import zlib
from xml.sax.saxutils import escape, quoteattr

from PIL import Image

from protocol.defaults import defaults_for

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
XMP_JPEG_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
NAMESPACE = "urn:runware-archive:1.0/"
PRIVATE_PARAMS = ("webhookURL", "uploadEndpoint")  # our own URLs: not the user's business
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
EXIF_IFD, USER_COMMENT, SOFTWARE = 0x8769, 0x9286, 0x0131


def load(conn, image_uuid):
    """``(task, result)`` rows (dicts) for ``image_uuid``, or None."""
    result = _row(conn, "SELECT * FROM results WHERE image_uuid = ?", image_uuid)
    if result is None:
        return None
    return _row(conn, "SELECT * FROM tasks WHERE task_uuid = ?", result["task_uuid"]), result


def _row(conn, sql, *args):
    cur = conn.execute(sql, args)
    row = cur.fetchone()
    return dict(zip([d[0] for d in cur.description], row)) if row else None


def sent_params(task):
    """The task's parameters as sent, without the service's own URLs."""
    params = json.loads(task["params"])
    return {k: v for k, v in params.items() if k not in PRIVATE_PARAMS}


def _quote(value):
    """A1111's rule: a value holding a comma, newline or quote is written as JSON."""
    text = str(value)
    return json.dumps(text, ensure_ascii=False) if re.search(r'[,\n"]', text) else text


def effective_params(task):
    """The task's parameters as sent, with Runware's defaults for the top-level ones it
    left out."""
    params = sent_params(task)
    filled = {k: v for k, v in defaults_for(params).items() if k.isalnum()}
    return {**filled, **params}


def parameters_text(task, result):
    """The AUTOMATIC1111 ``parameters`` text of one result (defaults filled in)."""
    params = effective_params(task)
    lines = [params.get("positivePrompt", "")]
    if params.get("negativePrompt"):
        lines.append(f"Negative prompt: {params['negativePrompt']}")
    fields = [
        ("Steps", params.get("steps")), ("Sampler", params.get("scheduler")),
        ("CFG scale", _number(params.get("CFGScale"))),
        ("Seed", result["seed"] if result["seed"] is not None else params.get("seed")),
        ("Size", f"{params['width']}x{params['height']}" if "width" in params else None),
        ("Model", params.get("model") or task["model"]),
        ("Lora", ", ".join(f"{lora['model']}:{_number(lora.get('weight', 1))}"
                           for lora in params.get("lora", [])) or None),
        ("Acceleration", params.get("acceleration")),
        ("Task UUID", task["task_uuid"]), ("Image UUID", result["image_uuid"]),
        ("Cost", _number(result["cost"])), ("Provider", task["provider"]),
    ]
    lines.append(", ".join(f"{key}: {_quote(value)}" for key, value in fields
                           if value is not None))
    return CONTROL.sub("", "\n".join(lines))


def _number(value):
    return None if value is None else f"{value:g}" if isinstance(value, float) else value


def sidecar(task, result):
    """Everything about one archived image, for ``<imageUUID>.json``."""
    return {
        "format": "runware-archive/1", "parameters": parameters_text(task, result),
        "taskUUID": task["task_uuid"], "imageUUID": result["image_uuid"],
        "seed": result["seed"], "cost": result["cost"], "model": task["model"],
        "provider": task["provider"], "params": sent_params(task),
        "defaults": defaults_for(sent_params(task)),
        "parentTaskUUID": task["parent_task_uuid"], "rerunMode": task["rerun_mode"],
        "nsfw": None if result["nsfw"] is None else bool(result["nsfw"]),
        "sha256": result["sha256"],
        "file": {"ext": result["file_ext"], "size": result["file_size"],
                 "width": result["img_width"], "height": result["img_height"]},
        "createdAt": task["created_at"], "receivedAt": result["received_at"],
        "archivedAt": result["archived_at"],
    }


def xmp_packet(task, result):
    """An XMP packet: the text as ``dc:description`` and ``exif:UserComment``, the ids as
    attributes, the parameters as JSON."""
    text = escape(parameters_text(task, result))
    alt = f'<rdf:Alt><rdf:li xml:lang="x-default">{text}</rdf:li></rdf:Alt>'
    attrs = {"taskUUID": task["task_uuid"], "imageUUID": result["image_uuid"],
             "seed": result["seed"], "model": task["model"], "sha256": result["sha256"]}
    params, defaults = (escape(CONTROL.sub("", json.dumps(value, sort_keys=True,
                                                          ensure_ascii=False)))
                        for value in (sent_params(task), defaults_for(sent_params(task))))
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
        f'xmlns:runware="{NAMESPACE}" xmp:CreatorTool="runware-archive" '
        + " ".join(f"runware:{k}={quoteattr(str(v))}" for k, v in attrs.items() if v is not None)
        + f"><dc:description>{alt}</dc:description>"
        f"<exif:UserComment>{alt}</exif:UserComment>"
        f"<runware:params>{params}</runware:params>"
        f"<runware:defaults>{defaults}</runware:defaults>"
        '</rdf:Description></rdf:RDF></x:xmpmeta>\n<?xpacket end="w"?>'
    ).encode("utf-8")


def exif_block(text):
    """EXIF (big-endian TIFF, starting ``Exif\\0\\0``) with ``text`` as ``UserComment``."""
    exif = Image.Exif()
    exif[SOFTWARE] = "runware-archive"
    exif.get_ifd(EXIF_IFD)[USER_COMMENT] = b"UNICODE\x00" + text.encode("utf-16-be")
    return exif.tobytes()


def embed(data, ext, task, result):
    """A copy of the original ``data`` with the parameters inside; the pixels untouched.

    :raises ValueError: ``data`` is not a well-formed file of type ``ext``.
    """
    text = parameters_text(task, result)
    xmp = xmp_packet(task, result)
    if ext == "png":
        return _embed_png(data, text, xmp)
    if ext == "jpg":
        return _embed_jpeg(data, exif_block(text), xmp)
    if ext == "webp":
        return _embed_webp(data, exif_block(text)[6:], xmp)
    raise ValueError(f"no metadata embedding for .{ext}")


def _png_chunk(kind, payload):
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


def _png_text(key, text):
    try:
        return _png_chunk(b"tEXt", key + b"\x00" + text.encode("latin-1"))
    except UnicodeEncodeError:
        return _png_chunk(b"iTXt", key + b"\x00\x00\x00\x00\x00" + text.encode("utf-8"))


def _embed_png(data, text, xmp):
    """The text chunks go right after IHDR (the first chunk, 25 bytes from byte 8)."""
    if not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("not a PNG file")
    end = 8 + 12 + struct.unpack(">I", data[8:12])[0]
    chunks = _png_text(b"parameters", text) + _png_chunk(
        b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp)
    return data[:end] + chunks + data[end:]


def _jpeg_segment(marker, payload):
    if len(payload) > 65533:
        raise ValueError("metadata too large for one JPEG segment")
    return b"\xff" + marker + struct.pack(">H", len(payload) + 2) + payload


def _embed_jpeg(data, exif, xmp):
    """APP1 EXIF and XMP after SOI, or after the JFIF APP0 segment when there is one."""
    if not data.startswith(b"\xff\xd8"):
        raise ValueError("not a JPEG file")
    at = 2
    if data[2:4] == b"\xff\xe0":
        at = 4 + struct.unpack(">H", data[4:6])[0]
    segments = _jpeg_segment(b"\xe1", exif) + _jpeg_segment(b"\xe1", XMP_JPEG_HEADER + xmp)
    return data[:at] + segments + data[at:]


def _riff_chunk(kind, payload):
    return kind + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) % 2 else b"")


def _embed_webp(data, exif, xmp):
    """EXIF and XMP chunks at the end; a simple file gets the VP8X header that says so."""
    if data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise ValueError("not a WEBP file")
    body = data[12:]
    if body[:4] == b"VP8X":
        flags = body[8] | 0x08 | 0x04
        body = body[:8] + bytes([flags]) + body[9:]
    else:
        with Image.open(io.BytesIO(data), formats=["WEBP"]) as im:
            (width, height), alpha = im.size, "A" in im.getbands()
        vp8x = bytes([0x08 | 0x04 | (0x10 if alpha else 0)]) + b"\x00\x00\x00" + (
            (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little"))
        body = _riff_chunk(b"VP8X", vp8x) + body
    body += _riff_chunk(b"EXIF", exif) + _riff_chunk(b"XMP ", xmp)
    return b"RIFF" + struct.pack("<I", len(body) + 4) + b"WEBP" + body
