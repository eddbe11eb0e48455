"""Per-task tokens for the webhook (and upload) URLs: pure functions, no I/O.

The token is an HMAC-SHA256 of the taskUUID under the service's secret (a file in the data
folder, :mod:`archive.keyfile`), so nothing per task
has to be stored, and a token for one task says nothing about another. Verification compares
in constant time (``hmac.compare_digest``), as gidgethub does for GitHub's signatures.
"""

import hashlib
import hmac

from archive.keyfile import SECRET_BYTES, load_or_create_secret

__all__ = ["SECRET_BYTES", "MAX_TOKEN_LENGTH", "TokenError", "make_token", "verify_token",
           "load_or_create_secret"]
MAX_TOKEN_LENGTH = 128  # a real token is 64 hex digits; anything longer is refused unread


class TokenError(Exception):
    """A missing (``status`` 401) or wrong (``status`` 403) token."""

    def __init__(self, message, status):
        super().__init__(message)
        self.status = status


def make_token(task_uuid, *, secret, purpose="webhook"):
    """The token that authorises ``purpose`` deliveries for ``task_uuid``."""
    message = f"{purpose}:{task_uuid}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify_token(token, task_uuid, *, secret, purpose="webhook"):
    """Check ``token`` for ``task_uuid``.

    :raises TokenError: 401 when the token is missing, 403 when it is wrong.
    """
    if not token:
        raise TokenError("missing token", 401)
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii():
        raise TokenError("invalid token", 403)
    expected = make_token(task_uuid, secret=secret, purpose=purpose)
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise TokenError("invalid token", 403)
