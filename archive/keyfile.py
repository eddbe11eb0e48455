"""Secrets kept as files in the data folder (the webhook secret, the sandbox's key): made
once, private to their owner, safe when two processes start at the same moment."""

import os
import secrets

SECRET_BYTES = 32


def load_or_create_secret(path, *, size=SECRET_BYTES):
    """Read the secret at ``path``, creating it (mode 0600) if absent.

    The new secret is written to a temporary file and hard-linked into place, so a
    second process starting at the same moment either wins or reads the whole winner.

    :raises RuntimeError: the file holds fewer than ``size`` bytes of hex.
    """
    if not os.path.exists(path):
        tmp = f"{path}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(size) + "\n")
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
    if len(value) < size * 2:
        raise RuntimeError(f"the secret in {path} is too short; delete it to make a new one")
    return bytes.fromhex(value)
