"""Untrusted text (query values, path segments, response headers) read as whole numbers
and dates, strictly (no Flask): whatever passes can go on to SQLite and to date arithmetic
without raising, so bad input becomes a refusal with a message, never a crash.

Python is more generous than a URL should be: ``int()`` takes other scripts' digits
('٣') and numbers of any size, which SQLite refuses with ``OverflowError`` (its integers
are signed 64-bit); ``str.isdigit()`` is wider still ('²' is a digit to it, not to
``int()``). So only ASCII digits pass here, within the range asked for.
"""

import re
from datetime import date

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # SQLite's INTEGER
_INTEGER = re.compile(r"-?[0-9]{1,19}")  # 19 digits: INT64_MAX has 19
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_int(text, *, minimum=INT64_MIN, maximum=INT64_MAX):
    """``text`` (ASCII digits, an optional leading ``-``) as an int in ``[minimum,
    maximum]``, which default to SQLite's range.

    :raises ValueError: saying what is wanted, for a message after the parameter's name.
    """
    if isinstance(text, str) and _INTEGER.fullmatch(text) and minimum <= int(text) <= maximum:
        return int(text)
    raise ValueError(f"must be a whole number from {minimum} to {maximum}")


def parse_day(text, *, earliest=date.min, latest=date.max):
    """``text`` as ``YYYY-MM-DD`` (ASCII digits) naming a real date in ``[earliest,
    latest]``; callers that shift a date by a day or a time zone narrow the range so the
    shifted date still exists.

    :raises ValueError: saying what is wanted, for a message after the parameter's name.
    """
    day = None
    if isinstance(text, str) and _DAY.fullmatch(text):
        try:
            day = date.fromisoformat(text)
        except ValueError:  # 2024-02-30
            pass
    if day is None or not earliest <= day <= latest:
        raise ValueError(f"must be a date as YYYY-MM-DD from {earliest} to {latest}")
    return day
