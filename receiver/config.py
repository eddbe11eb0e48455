"""Settings: defaults, then the data folder's ``config.py``, then the environment, then tests.

Every setting is named as its environment variable (``RUNWARE_ARCHIVE_DIR`` …), so
``app.config`` reads like the README's table of settings.
"""

import ipaddress
import json
import os
from urllib.parse import urlsplit

from sandbox import config as sandbox_config
from sandbox.ledger import key_uuid as sandbox_key_uuid

RUNWARE_API_URL = "https://api.runware.ai/v1"
RUNWARE_IMAGE_HOST = "im.runware.ai"
SANDBOX_PATH = sandbox_config.PATH  # where the archive mounts the sandbox
# The routes Runware calls back (receiver/provider/webhooks.py, receiver/files.py): the webhookURL and
# uploadEndpoint sent with each task, and the only places the sandbox calls.
WEBHOOK_ROUTE = "/webhooks/runware/{task_uuid}"
UPLOAD_ROUTE = "/uploads/{task_uuid}"  # matching rule in archive/uploads.py
DEFAULT_PORT = 5000

DEFAULTS = {
    "RUNWARE_ARCHIVE_DIR": "runware-archive-data",
    "RUNWARE_API_KEY": None,
    "RUNWARE_API_URL": None,
    "RUNWARE_ARCHIVE_PUBLIC_URL": None,
    # The host names answered besides loopback, the address served on and PUBLIC_URL's
    # (receiver/hosts.py: DNS rebinding), and how far X-Forwarded-* are trusted.
    "RUNWARE_ARCHIVE_ALLOWED_HOSTS": None,
    "RUNWARE_ARCHIVE_PROXY_FIX": None,
    "RUNWARE_ARCHIVE_IMAGE_HOSTS": None,
    "RUNWARE_ARCHIVE_MAX_DELIVERY_BYTES": 40 * 1024 * 1024,
    "RUNWARE_ARCHIVE_SYNCHRONOUS": "FULL",
    "RUNWARE_ARCHIVE_BUSY_TIMEOUT_MS": 3000,
    "RUNWARE_ARCHIVE_SUBMIT_TIMEOUT": 120.0,
    "RUNWARE_ARCHIVE_SUBMIT_RETRIES": 3,  # Runware's SDK: runware/types/sdk.py max_retries
    "RUNWARE_ARCHIVE_SUBMIT_BACKOFF": 1.0,  # and retry_delay (1,000 ms)
    # The image archive (archive/fetcher.py, archive/images.py, receiver/storage.py).
    "RUNWARE_ARCHIVE_FETCHER": "thread",
    "RUNWARE_ARCHIVE_MAX_IMAGE_BYTES": 50 * 1024 * 1024,
    "RUNWARE_ARCHIVE_FETCH_TIMEOUT": 30.0,
    "RUNWARE_ARCHIVE_FETCH_CONCURRENCY": 2,
    "RUNWARE_ARCHIVE_FETCH_ATTEMPTS": 6,
    "RUNWARE_ARCHIVE_FETCH_LEASE": None,
    "RUNWARE_ARCHIVE_UPLOADS": "off",
    # Where the images are (receiver/storage.py): "file" (the data folder) or
    # s3://bucket/prefix, with the endpoint of a store other than AWS; how /files/ and
    # /thumbs/ answer from a bucket ("redirect" to a presigned GET, or "stream"), and how
    # long a presigned GET (seconds) or an uploadEndpoint PUT URL lasts.
    "RUNWARE_ARCHIVE_STORAGE": "file",
    "RUNWARE_ARCHIVE_S3_ENDPOINT": None,
    "RUNWARE_ARCHIVE_S3_SERVE": "redirect",
    "RUNWARE_ARCHIVE_S3_URL_EXPIRY": 300,
    "RUNWARE_ARCHIVE_S3_UPLOAD_EXPIRY": 86400,
    # The catalogue replicated off the machine by Litestream (receiver/replica.py).
    "RUNWARE_ARCHIVE_REPLICA": None,
    "RUNWARE_ARCHIVE_RECONCILE_AFTER": 600.0,
    "RUNWARE_ARCHIVE_RECONCILE_INTERVAL": 60.0,
    "RUNWARE_ARCHIVE_DELIVERY_RETENTION_DAYS": 30.0,
    # Relaying a /v1 client's own webhookURL (archive/relay.py): attempts per result, and
    # the first wait (doubling per attempt, at most 10 minutes): 20 attempts span ~1.8 h.
    "RUNWARE_ARCHIVE_RELAY_ATTEMPTS": 20,
    "RUNWARE_ARCHIVE_RELAY_BACKOFF": 1.0,
    # Cost tracking and budgets (archive/costs.py, archive/budgets.py).
    "RUNWARE_ARCHIVE_TIMEZONE": "UTC",
    "RUNWARE_ARCHIVE_BUDGET_DAILY": None,
    "RUNWARE_ARCHIVE_BUDGET_MONTHLY": None,
    "RUNWARE_ARCHIVE_ALERT_URL": None,
    # Runware's own books (receiver/provider/books.py): the day's difference past which an
    # alert is raised, the balance under which one is, how often the worker asks, and the
    # UUID Runware's usage gives the archive's key (the sandbox's is known).
    "RUNWARE_ARCHIVE_BOOKS_THRESHOLD": 0.01,
    "RUNWARE_ARCHIVE_BALANCE_ALERT": None,
    "RUNWARE_ARCHIVE_BOOKS_INTERVAL": 86400.0,
    "RUNWARE_ARCHIVE_API_KEY_UUID": None,
    # The browsable history (receiver/views/auth.py): set, every page and the JSON API need it.
    "RUNWARE_ARCHIVE_UI_PASSWORD": None,
    # The sandbox provider's own settings (sandbox/config.py), set the same ways.
    **sandbox_config.DEFAULTS,
}

# How each environment variable is parsed; all others are kept as text.
_PARSERS = {
    "RUNWARE_ARCHIVE_BUSY_TIMEOUT_MS": int,
    "RUNWARE_ARCHIVE_MAX_DELIVERY_BYTES": int,
    "RUNWARE_ARCHIVE_SUBMIT_TIMEOUT": float,
    "RUNWARE_ARCHIVE_SUBMIT_RETRIES": int,
    "RUNWARE_ARCHIVE_SUBMIT_BACKOFF": float,
    "RUNWARE_ARCHIVE_MAX_IMAGE_BYTES": int,
    "RUNWARE_ARCHIVE_FETCH_TIMEOUT": float,
    "RUNWARE_ARCHIVE_FETCH_CONCURRENCY": int,
    "RUNWARE_ARCHIVE_FETCH_ATTEMPTS": int,
    "RUNWARE_ARCHIVE_FETCH_LEASE": float,
    "RUNWARE_ARCHIVE_RECONCILE_AFTER": float,
    "RUNWARE_ARCHIVE_S3_URL_EXPIRY": int,
    "RUNWARE_ARCHIVE_S3_UPLOAD_EXPIRY": int,
    "RUNWARE_ARCHIVE_RECONCILE_INTERVAL": float,
    "RUNWARE_ARCHIVE_DELIVERY_RETENTION_DAYS": float,
    "RUNWARE_ARCHIVE_RELAY_ATTEMPTS": int,
    "RUNWARE_ARCHIVE_RELAY_BACKOFF": float,
    "RUNWARE_ARCHIVE_BUDGET_DAILY": float,
    "RUNWARE_ARCHIVE_BUDGET_MONTHLY": float,
    "RUNWARE_ARCHIVE_BOOKS_THRESHOLD": float,
    "RUNWARE_ARCHIVE_BALANCE_ALERT": float,
    "RUNWARE_ARCHIVE_BOOKS_INTERVAL": float,
    **sandbox_config.PARSERS,
}


def data_dir(test_config=None):
    """The absolute data folder: test config, then environment, then the default."""
    folder = (test_config or {}).get("RUNWARE_ARCHIVE_DIR") or os.environ.get(
        "RUNWARE_ARCHIVE_DIR"
    ) or DEFAULTS["RUNWARE_ARCHIVE_DIR"]
    return os.path.abspath(folder)


def from_environment(config, environ=os.environ):
    """Copy every known ``RUNWARE_*`` variable that is set into ``config``, parsed."""
    for key in config:
        if key.startswith("RUNWARE_") and environ.get(key, "") != "":
            parse = _PARSERS.get(key, str)
            try:
                config[key] = parse(environ[key])
            except ValueError:
                raise SystemExit(f"{key}={environ[key]!r} is not a valid {parse.__name__}")


def provider_name(config):
    """``runware`` with an API key, ``sandbox`` without one."""
    return "runware" if config.get("RUNWARE_API_KEY") else "sandbox"


def api_key_uuid(config, sandbox_key=None):
    """The UUID under which Runware's usage reports the archive's own API key: the
    setting, else on the sandbox its own key's (``sandbox.ledger.key_uuid``); None when
    it is not known (then other keys' spend is not told apart)."""
    if config.get("RUNWARE_ARCHIVE_API_KEY_UUID"):
        return config["RUNWARE_ARCHIVE_API_KEY_UUID"]
    if provider_name(config) == "sandbox" and sandbox_key:
        return sandbox_key_uuid(sandbox_key, sandbox_key)
    return None


def image_hosts(config, local_url=None):
    """The download allowlist: ``host[:port]`` entries, lower-cased.

    Without an API key the sandbox's own host (this service) is on it, or nothing
    could be archived on a fresh machine.
    """
    raw = config.get("RUNWARE_ARCHIVE_IMAGE_HOSTS")
    hosts = [h.strip().lower() for h in raw.split(",") if h.strip()] if raw else [
        RUNWARE_IMAGE_HOST
    ]
    if provider_name(config) == "sandbox" and local_url:
        hosts.append(urlsplit(local_url).netloc.lower())
    return hosts


def server_file(config):
    """Where ``serve`` records the address it listens on, for the CLI and defaults."""
    return os.path.join(config["RUNWARE_ARCHIVE_DIR"], "server.json")


def record_server_address(config, url):
    """Remember the loopback URL this service is served on (written by ``serve``)."""
    config["SERVER_URL"] = url
    with open(server_file(config), "w") as f:
        json.dump({"url": url, "pid": os.getpid()}, f)


def local_url(config):
    """The URL at which this machine reaches the service: as served, or as recorded."""
    if config.get("SERVER_URL"):
        return config["SERVER_URL"]
    try:
        with open(server_file(config)) as f:
            return json.load(f)["url"]
    except (OSError, ValueError, KeyError):
        return f"http://127.0.0.1:{DEFAULT_PORT}"


PUBLIC_URL_REQUIRED = (
    "RUNWARE_ARCHIVE_PUBLIC_URL is not set: Runware must reach this service's webhook, and "
    "it cannot reach an address on this machine. Set it to the URL at which Runware reaches "
    "this service (https://archive.example.org). Nothing was sent.")


def provider_is_local(config):
    """Whether the provider is on this machine (the sandbox, or RUNWARE_API_URL on
    loopback), so that it can call back the loopback address this service is served on."""
    if provider_name(config) == "sandbox":
        return True
    host = (urlsplit(provider_url(config)).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def public_url(config):
    """The base URL the provider calls back, from configuration only; None if there is none.

    Never from the request being answered: its Host header is the client's to choose (a
    forged header, or a DNS-rebinding page), and the webhookURL carries the task's token to
    whatever it names. The setting, else the address this service is served on as
    recorded, but only for a provider on this machine: Runware itself cannot reach that,
    so then there is no URL and submitting is refused (:data:`PUBLIC_URL_REQUIRED`).
    """
    if config.get("RUNWARE_ARCHIVE_PUBLIC_URL"):
        return config["RUNWARE_ARCHIVE_PUBLIC_URL"].rstrip("/")
    if provider_is_local(config):
        return local_url(config).rstrip("/")
    return None


def provider_url(config):
    """Where tasks are POSTed: the setting, Runware with a key, the local sandbox without."""
    if config.get("RUNWARE_API_URL"):
        return config["RUNWARE_API_URL"]
    if provider_name(config) == "runware":
        return RUNWARE_API_URL
    return local_url(config).rstrip("/") + SANDBOX_PATH
