"""Generation parameters read back from an image file (A1111's "PNG Info"; no Flask).

:mod:`archive.metadata` writes them into every download: AUTOMATIC1111's ``parameters``
text (a PNG text chunk; EXIF ``UserComment`` in JPEG and WEBP) and an XMP packet holding
the request as sent (``runware:params``) and the image's ids and seed. This reads both
back, from our files and from A1111's (whose text is the same format), so a picture
dropped on ``/read`` can be run again.

Only the file's headers are parsed, never its pixels: Pillow opens it lazily, with its own
limits on text chunks, and its decompression-bomb warning (past ``Image.MAX_IMAGE_PIXELS``,
89 million pixels, far above any image Runware makes) is turned into a refusal, so a small
file that claims to be enormous costs nothing.
"""

import io
import json
import re
import warnings
from dataclasses import dataclass, field
from xml.sax.saxutils import unescape

from PIL import Image, UnidentifiedImageError

from archive.metadata import EXIF_IFD, USER_COMMENT

FORMATS = ("PNG", "JPEG", "WEBP")
XML_ENTITIES = {"&quot;": '"', "&apos;": "'"}
# A1111's own pattern for one "Key: value" of the last line (modules/infotext_utils.py):
# a value is JSON-quoted when it holds a comma, newline or quote.
_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
_XMP_PARAMS = re.compile(r"<runware:params>(.*?)</runware:params>", re.S)
_XMP_ATTR = re.compile(r'runware:(taskUUID|imageUUID|seed|model)="([^"]*)"')


class NotAnImage(ValueError):
    """The bytes are not a PNG, JPEG or WEBP file Pillow can open."""


@dataclass
class Reading:
    """What a file says about how it was made.

    :ivar text: the A1111 ``parameters`` text, or None.
    :ivar fields: that text parsed: ``prompt``, ``negative``, and each ``Key: value``.
    :ivar request: the request as sent, from our XMP (exact), or None.
    :ivar ids: ``taskUUID``, ``imageUUID``, ``seed``, ``model`` from our XMP.
    """

    format: str
    width: int
    height: int
    text: str = None
    fields: dict = field(default_factory=dict)
    request: dict = None
    ids: dict = field(default_factory=dict)

    @property
    def found(self):
        """True when the file carried parameters of either kind."""
        return bool(self.text or self.request)


def read(data):
    """The :class:`Reading` of an image file's bytes.

    :raises NotAnImage: not a PNG, JPEG or WEBP, or one too large to be a real image.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError):
            raise NotAnImage("an image that claims more pixels than any real one") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise NotAnImage("not a PNG, JPEG or WEBP image") from None
    with image:
        width, height = image.size
        reading = Reading(image.format, width, height)
        reading.text = _text(image)
        xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    if reading.text:
        reading.fields = parse_parameters(reading.text)
    if xmp:
        reading.request, reading.ids = _xmp(xmp)
    return reading


def _text(image):
    """A1111's text: the PNG ``parameters`` chunk, else EXIF ``UserComment``."""
    if image.format == "PNG":
        text = image.info.get("parameters")
        return text if isinstance(text, str) and text.strip() else None
    try:
        comment = image.getexif().get_ifd(EXIF_IFD).get(USER_COMMENT)
    except (OSError, SyntaxError, ValueError, KeyError, TypeError):  # a broken EXIF block
        return None
    return user_comment(comment) if comment else None


def user_comment(value):
    """The text of an EXIF ``UserComment``: an 8-byte character code, then the text
    (``UNICODE``: UTF-16, big-endian as we and A1111's piexif write it, little-endian
    from some tools: told apart by where the zero bytes of ASCII text fall)."""
    if isinstance(value, str):
        return value.strip("\x00 ") or None
    code, body = bytes(value[:8]), bytes(value[8:])
    if code.startswith(b"UNICODE"):
        little = body[1::2].count(0) > body[0::2].count(0)
        text = body.decode("utf-16-le" if little else "utf-16-be", errors="replace")
    else:
        text = body.decode("utf-8", errors="replace")
    return text.strip("\x00 ").replace("\x00", "") or None


def parse_parameters(text):
    """A1111's parameters text as ``{"prompt", "negative", <Key>: <value>, …}``, read as
    A1111's own ``parse_generation_parameters`` reads it: the last line holds the
    ``Key: value`` pairs when it has three or more; lines after ``Negative prompt:`` are
    the negative prompt."""
    lines = text.strip().split("\n")
    pairs = []
    if len(_PARAM.findall(lines[-1])) >= 3:
        pairs = _PARAM.findall(lines.pop())
    prompt, negative, in_negative = [], [], False
    for line in lines:
        if line.startswith("Negative prompt:"):
            in_negative, line = True, line[len("Negative prompt:"):].lstrip()
        (negative if in_negative else prompt).append(line)
    found = {"prompt": "\n".join(prompt).strip(), "negative": "\n".join(negative).strip()}
    for key, value in pairs:
        if value.startswith('"') and value.endswith('"'):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        found[key.strip()] = value.strip() if isinstance(value, str) else value
    return found


def _xmp(packet):
    """``(request as sent or None, ids)`` from our XMP packet (others have neither)."""
    if isinstance(packet, bytes):
        packet = packet.decode("utf-8", errors="replace")
    ids = {key: unescape(value, XML_ENTITIES) for key, value in _XMP_ATTR.findall(packet)}
    request = None
    match = _XMP_PARAMS.search(packet)
    if match:
        try:
            request = json.loads(unescape(match[1], XML_ENTITIES))
        except ValueError:
            request = None
    return (request if isinstance(request, dict) else None), ids
