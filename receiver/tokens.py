"""Per-task tokens for the webhook (and upload) URLs: pure functions, no I/O.

The token is an HMAC-SHA256 of the taskUUID under the service's secret, so nothing per task
has to be stored, and a token for one task says nothing about another. Verification compares
in constant time (``hmac.compare_digest``), as gidgethub does for GitHub's signatures.
"""

import hashlib
import hmac
import os
import secrets

SECRET_BYTES = 32
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


def load_or_create_secret(path):
    """Read the secret at ``path``, creating it (mode 0600) if absent.

    The new secret is written to a temporary file and hard-linked into place, so a
    second process starting at the same moment either wins or reads the whole winner.
    """
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(SECRET_BYTES) + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    with open(path) as f:
        value = f.read().strip()
    if len(value) < SECRET_BYTES * 2:
        raise RuntimeError(f"the secret in {path} is too short; delete it to make a new one")
    return bytes.fromhex(value)
