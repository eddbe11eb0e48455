"""The sandbox's settings, named as their environment variables. The archive adds them to
its own (``receiver.config``), so one README table and one ``config.py`` set both; the
standalone sandbox reads them from the environment alone."""

import os

PATH = "/sandbox/v1"  # where the REST endpoint is served, mounted or alone

DEFAULTS = {
    "RUNWARE_SANDBOX_DIR": None,
    "RUNWARE_SANDBOX_FAULTS": None,  # syntax: sandbox/app.py
    "RUNWARE_SANDBOX_RETRY_BASE": 0.25,
    "RUNWARE_SANDBOX_RETRY_CAP": 8.0,
    "RUNWARE_SANDBOX_MAX_ATTEMPTS": 10,
    "RUNWARE_SANDBOX_RESULT_DELAY": 0.2,
    "RUNWARE_SANDBOX_WEBHOOK_TIMEOUT": 5.0,
    # The account's starting balance in USD: every generation is charged to it
    # (sandbox/ledger.py), and getDetails reports what is left.
    "RUNWARE_SANDBOX_BALANCE": 100.0,
    # What it calls back besides the mounting service's own routes, and the work it takes
    # (sandbox/guard.py).
    "RUNWARE_SANDBOX_CALLBACKS": None,
    "RUNWARE_SANDBOX_MAX_BODY_BYTES": 1024 * 1024,
    "RUNWARE_SANDBOX_MAX_REQUEST_PIXELS": 24 * 1024 * 1024,
    "RUNWARE_SANDBOX_MAX_PENDING_PIXELS": 128 * 1024 * 1024,
}

PARSERS = {
    "RUNWARE_SANDBOX_RETRY_BASE": float,
    "RUNWARE_SANDBOX_RETRY_CAP": float,
    "RUNWARE_SANDBOX_MAX_ATTEMPTS": int,
    "RUNWARE_SANDBOX_RESULT_DELAY": float,
    "RUNWARE_SANDBOX_WEBHOOK_TIMEOUT": float,
    "RUNWARE_SANDBOX_BALANCE": float,
    "RUNWARE_SANDBOX_MAX_BODY_BYTES": int,
    "RUNWARE_SANDBOX_MAX_REQUEST_PIXELS": int,
    "RUNWARE_SANDBOX_MAX_PENDING_PIXELS": int,
}


def from_environment(config, environ=os.environ):
    """Copy each sandbox setting that is set in ``environ`` into ``config``, parsed.

    :raises SystemExit: a value that does not parse, named.
    """
    for key in DEFAULTS:
        if environ.get(key, "") != "":
            parse = PARSERS.get(key, str)
            try:
                config[key] = parse(environ[key])
            except ValueError:
                raise SystemExit(f"{key}={environ[key]!r} is not a valid {parse.__name__}")
