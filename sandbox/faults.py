"""Fault switches for the sandbox: parsed from ``RUNWARE_SANDBOX_FAULTS`` or ``X-Sandbox-Faults``.

The syntax and meaning of each switch are documented in :mod:`sandbox.app`. Decisions
are drawn from a random generator seeded with ``seed`` and what is being decided (a task, an
image, a request body), so with a seed every run makes the same choices, in any process.
"""

import random
from dataclasses import dataclass, field

PROBABILITIES = ("duplicate", "shuffle", "fail", "wrapped", "reply_lost", "drop")
SUBMIT_CODES = (429, 500, 502, 503, 504)
DEFAULT_SUBMIT_MAX = 2


class FaultSyntaxError(ValueError):
    """A fault specification that does not parse."""


@dataclass
class Faults:
    """The switches in force for one task (all off by default)."""

    duplicate: float = 0.0
    shuffle: float = 0.0
    fail: float = 0.0
    wrapped: float = 0.0
    reply_lost: float = 0.0
    drop: float = 0.0
    delay: float = 0.0
    forget: float | None = None  # seconds after which getResponse no longer knows a task
    drop_first: int = 0
    submit: dict = field(default_factory=dict)  # HTTP status -> probability
    submit_max: int = DEFAULT_SUBMIT_MAX
    seed: int | None = None

    def rng(self, *subject):
        """A generator for deciding about ``subject``: reproducible when ``seed`` is set."""
        if self.seed is None:
            return random.Random()
        return random.Random(":".join(map(str, (self.seed, *subject))))

    def chance(self, name, *subject):
        """True with the probability of switch ``name``, decided for ``subject``."""
        probability = getattr(self, name)
        return probability > 0 and self.rng(name, *subject).random() < probability


def _probability(key, text):
    value = _number(key, text, float)
    if not 0 <= value <= 1:
        raise FaultSyntaxError(f"{key}: a probability must be between 0 and 1, not {text}")
    return value


def _number(key, text, kind):
    try:
        value = kind(text)
    except ValueError:
        raise FaultSyntaxError(f"{key}: {text!r} is not a valid {kind.__name__}") from None
    if value < 0:
        raise FaultSyntaxError(f"{key}: must not be negative")
    return value


def _submit_code(key, text):
    try:
        code = int(text)
    except ValueError:
        raise FaultSyntaxError(f"{key}: {text!r} is not an HTTP status") from None
    if code not in SUBMIT_CODES:
        raise FaultSyntaxError(f"{key}: status must be one of {SUBMIT_CODES}")
    return code


def _apply(faults, key, value):
    if key in PROBABILITIES:
        setattr(faults, key, _probability(key, value))
    elif key in ("delay", "forget"):
        setattr(faults, key, _number(key, value, float))
    elif key in ("drop_first", "submit_max", "seed"):
        setattr(faults, key, _number(key, value, int))
    elif key == "submit_status":
        code, _, probability = value.partition(":")
        faults.submit[_submit_code(key, code)] = _probability(key, probability or "1")
    elif key.startswith("submit_"):
        faults.submit[_submit_code(key, key.removeprefix("submit_"))] = _probability(key, value)
    else:
        raise FaultSyntaxError(f"unknown fault {key!r}")


def parse_faults(text):
    """Parse ``key=value,key=value`` into :class:`Faults`; empty or None means none.

    :raises FaultSyntaxError: naming the part that is wrong.
    """
    faults = Faults()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep or not value.strip():
            raise FaultSyntaxError(f"{part!r} must be key=value")
        _apply(faults, key.strip(), value.strip())
    return faults
