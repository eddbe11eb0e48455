"""``runware-archive serve --workers N``: gunicorn workers plus the fetcher as its own process.

The master prepares the data folder once (secret, migrations, WAL) before it forks, so
workers never race to create them; each worker builds its own app (own connections). The
image fetcher runs as ``runware-archive worker`` beside them, and stops with them.
"""

import os
import shutil
import subprocess
import sys

from gunicorn.app.base import BaseApplication

from receiver import create_app, gunicorn_conf

SETTINGS = ("workers", "worker_class", "threads", "worker_connections", "timeout",
            "graceful_timeout", "accesslog", "access_log_format")


class ArchiveGunicorn(BaseApplication):
    """gunicorn serving ``create_app()`` with :mod:`receiver.gunicorn_conf`'s settings."""

    def __init__(self, bind, workers):
        self.bind, self.workers = bind, workers
        super().__init__()

    def load_config(self):
        for name in SETTINGS:
            self.cfg.set(name, getattr(gunicorn_conf, name))
        self.cfg.set("bind", [self.bind])
        self.cfg.set("workers", self.workers)

    def load(self):
        return create_app()


def prometheus_dir(data_dir):
    """A fresh folder for the workers' shared metrics (prometheus_client multiprocess)."""
    folder = os.path.join(data_dir, "prometheus")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    return folder


def start_fetch_worker():
    """``runware-archive worker`` as a child process; returns the Popen."""
    return subprocess.Popen([sys.executable, "-m", "receiver.cli", "worker"])


def serve_with_gunicorn(app, bind, workers):
    """Run gunicorn until it exits, with the fetcher process beside it."""
    os.environ["RUNWARE_ARCHIVE_DIR"] = app.config["RUNWARE_ARCHIVE_DIR"]
    fetcher = start_fetch_worker() if app.config["RUNWARE_ARCHIVE_FETCHER"] != "off" else None
    try:
        ArchiveGunicorn(bind, workers).run()
    finally:
        if fetcher is not None:
            fetcher.terminate()
            fetcher.wait(10)
