"""The strict JSON field types and validators that the task schemas
(:mod:`protocol.schemas`) and the delivery schemas (:mod:`protocol.deliveries`) share, and
how a marshmallow error becomes Runware-style ``[{"parameter", "message"}]``."""

import math
import re

from marshmallow import ValidationError, fields, missing, validate

# The catalogue keeps integers in SQLite INTEGER columns, which hold signed 64 bits; a larger
# JSON integer would pass a range-less rule here and fail at the insert instead.
_INT_LIMIT = 2**63 - 1
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ANY_UUID = r"(?i)^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


def has_lone_surrogate(text):
    """Whether ``text`` holds a lone UTF-16 surrogate, which no UTF-8 column can store."""
    return not text.isascii() and _SURROGATE.search(text) is not None


# --- Strict JSON field types -------------------------------------------------------------


class _Messages:
    """Error wording shared by every field: the parameter name is added by the caller."""

    default_error_messages = {"required": "is required", "null": "must not be null"}


class _WellFormed:
    """Refuses a string holding a lone UTF-16 surrogate.

    JSON's ``"\\ud800"`` escape decodes to such a string; it is no Unicode text, so it cannot
    be encoded as UTF-8 and would fail later, at the catalogue's insert or the provider's
    request, instead of here as a validation error.
    """

    default_error_messages = {
        "surrogate": "contains an invalid character (a lone UTF-16 surrogate)"}

    def _deserialize(self, value, attr, data, **kwargs):
        value = super()._deserialize(value, attr, data, **kwargs)
        # isascii() is O(1) in CPython, so a large ASCII string (base64 data) costs nothing.
        if has_lone_surrogate(value):
            raise self.make_error("surrogate")
        return value


class Str(_Messages, _WellFormed, fields.String):
    """A JSON string of Unicode text, nothing else."""

    default_error_messages = {"invalid": "must be a string"}


class Int(_Messages, fields.Integer):
    """A JSON integer that fits 64 bits: refuses strings, floats (even 5.0) and booleans."""

    default_error_messages = {"invalid": "must be an integer", "too_large": "is too large"}

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _validated(self, value):
        value = super()._validated(value)
        if not -_INT_LIMIT - 1 <= value <= _INT_LIMIT:
            raise self.make_error("too_large", input=value)
        return value


class Num(_Messages, fields.Float):
    """A JSON number (int or float, kept as given): refuses strings, booleans, NaN, infinity."""

    default_error_messages = {
        "invalid": "must be a number",
        "too_large": "is too large",
        "special": "must be a finite number",
    }

    def _validated(self, value):
        if not isinstance(value, (int, float)):
            raise self.make_error("invalid", input=value)
        super()._validated(value)  # refuses booleans, NaN and infinities
        return value


class Bool(_Messages, fields.Boolean):
    """A JSON boolean: only true or false, never 1, "yes" or "true"."""

    default_error_messages = {"invalid": "must be true or false"}

    def _deserialize(self, value, attr, data, **kwargs):
        if value is True or value is False:
            return value
        raise self.make_error("invalid", input=value)


class UpperChoice(Str):
    """A case-insensitive name, loaded upper-case (§2: the docs themselves send `jpg`)."""

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).upper()


class DeliveredUUID(Str):
    """A UUID of any version from Runware, loaded in canonical lower-case form for matching."""

    def __init__(self, **kwargs):
        super().__init__(validate=validate.Regexp(_ANY_UUID, error="must be a UUID"), **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        return super()._deserialize(value, attr, data, **kwargs).lower()


class HttpUrl(_Messages, _WellFormed, fields.Url):
    """An absolute http(s) URL of at most 2048 characters; loopback hosts are allowed."""

    default_error_messages = {"invalid": "must be an absolute http or https URL"}

    def __init__(self, **kwargs):
        length = validate.Length(max=2048, error="must be at most {max} characters")
        super().__init__(
            relative=False, schemes={"http", "https"}, require_tld=False, validate=length, **kwargs
        )


class Obj(_Messages, fields.Nested):
    """A nested JSON object."""


class ListOf(_Messages, fields.List):
    """A JSON array."""

    default_error_messages = {"invalid": "must be a list"}


class StrOrStrList(_Messages, fields.Field):
    """A string or a list of strings (§1: an error's `parameter` may be an array)."""

    default_error_messages = {"invalid": "must be a string or a list of strings"}

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            return value
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        raise self.make_error("invalid", input=value)


class ServiceSet(fields.Field):
    """A parameter the service sets itself, so a user-supplied value is refused."""

    def deserialize(self, value, attr=None, data=None, **kwargs):
        """Let an absent value through; refuse any given value, even null."""
        if value is missing:
            return missing
        raise ValidationError("is set by the service and must be left out")


# --- Validators --------------------------------------------------------------------------


def between(low, high):
    return validate.Range(min=low, max=high, error="must be between {min} and {max}")


def at_least(low):
    return validate.Range(min=low, error="must be at least {min}")


def one_of(choices, what=None):
    return validate.OneOf(choices, error=what or "must be one of: {choices}")


def length_between(low, high):
    return validate.Length(min=low, max=high, error="must be between {min} and {max} characters")


def multiple_of_16(value):
    if value % 16:
        raise ValidationError("must be a multiple of 16")


def in_steps_of_hundredths(value):
    # Floats such as 3.5 or 0.07 are not exact multiples of 0.01 in binary, hence the tolerance.
    scaled = value * 100
    if not math.isclose(scaled, round(scaled), abs_tol=1e-6):
        raise ValidationError("must be in steps of 0.01")


def collect_error(errors, field, message):
    errors.setdefault(field, []).append(message)


# --- Errors as Runware-style lists --------------------------------------------------


def _flatten(messages, path=()):
    """Yield (path parts, message) for marshmallow's nested error messages."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from _flatten(value, path if key == "_schema" else path + (key,))
    elif isinstance(messages, (list, tuple)):
        for item in messages:
            yield from _flatten(item, path)
    else:
        yield path, str(messages)


def _dotted(path):
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    # An unknown key may hold a lone surrogate; escaped, the name can be printed and stored.
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode()


def _path_order(item):
    # Field names sort by name, list indexes by number; same-path messages keep their order.
    return tuple((-1, part) if isinstance(part, str) else (part, "") for part in item[0])


def validation_errors(err: ValidationError) -> list[dict]:
    """Flatten `err.messages` into `[{"parameter": "lora[0].weight", "message": ...}]`."""
    flat = sorted(_flatten(err.messages), key=_path_order)
    return [{"parameter": _dotted(path), "message": message} for path, message in flat]
