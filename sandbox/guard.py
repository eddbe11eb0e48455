"""What keeps the sandbox from being a door or a relay: who may use it, whom it calls back,
and how much work one request or all of them may ask for.

- **Its key.** The sandbox takes only its own key, kept beside its state like the webhook
  secret (``sandbox-key`` in the sandbox folder, mode 0600), or the UI password. The
  archive's client reads the same file, so the two always agree; anyone else, on the
  machine or the network, spends none of its CPU or disk.
- **Its callbacks.** A webhook or upload goes only to the mounting service's own webhook
  and upload route *for that task* (scheme, host, port and path: the service hands the
  sandbox a function that names them, :func:`sandbox.app.init_app`), or under a URL prefix
  the settings name (``RUNWARE_SANDBOX_CALLBACKS``; ``runware-archive sandbox
  --callback-base``). Not "any loopback port": that would let a task make this machine
  POST to other services' admin APIs.
- **Its work.** A request body is capped (413), as are the pixels one request asks for and
  the pixels still to be rendered across all tasks (429 ``rateLimitExceeded``, as Runware
  answers when its queue is full: runware-api.md §7). Sizes are held to 128–2048, the
  range of Runware's generic image-inference reference, since nothing gives one for this
  model and the sandbox must not be asked to render a 100,000² picture.
"""

import hmac
import os
from urllib.parse import urlsplit

from archive.keyfile import load_or_create_secret

KEY_FILE = "sandbox-key"
MIN_SIDE, MAX_SIDE = 128, 2048  # runware.ai/docs/image-inference/api-reference: width, height


def sandbox_folder(config):
    """Where the sandbox keeps its state and key: ``RUNWARE_SANDBOX_DIR``, else the data
    folder."""
    return config.get("RUNWARE_SANDBOX_DIR") or config["RUNWARE_ARCHIVE_DIR"]


def sandbox_key(config):
    """The sandbox's key (hex), made on first use."""
    return load_or_create_secret(os.path.join(sandbox_folder(config), KEY_FILE)).hex()


def key_accepted(given, config):
    """Whether ``given`` is the sandbox's key or the UI password (constant-time)."""
    if not given:
        return False
    candidates = [sandbox_key(config), config.get("RUNWARE_ARCHIVE_UI_PASSWORD") or ""]
    return any(candidate and hmac.compare_digest(given.encode(), candidate.encode())
               for candidate in candidates)


def _origin(url):
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def callback_allowed(url, config, own_urls=()):
    """May the sandbox send a task's webhook or upload to ``url``? Only to one of
    ``own_urls`` (the mounting service's route for that task, compared without the query
    that carries its token), or under a configured prefix."""
    parts = urlsplit(url)
    if any(_origin(url) == _origin(own) and parts.path == urlsplit(own).path
           for own in own_urls):
        return True
    return any(_origin(url) == _origin(base) and parts.path.startswith(
        urlsplit(base).path or "/") for base in callback_bases(config))


def callback_bases(config):
    """The URL prefixes ``RUNWARE_SANDBOX_CALLBACKS`` names (comma-separated)."""
    text = config.get("RUNWARE_SANDBOX_CALLBACKS") or ""
    return [part.strip() for part in text.split(",") if part.strip()]


def size_problem(task):
    """``(parameter, message)`` when the task's size is outside what the sandbox renders."""
    for name in ("width", "height"):
        value = task.get(name, 1024)
        if not MIN_SIDE <= value <= MAX_SIDE:
            return name, (f"{name} must be between {MIN_SIDE} and {MAX_SIDE} in the sandbox "
                          "(Runware's generic image-inference range)")
    return None


def pixels(task):
    """The pixels a task asks the sandbox to render."""
    return task.get("width", 1024) * task.get("height", 1024) * task.get("numberResults", 1)
