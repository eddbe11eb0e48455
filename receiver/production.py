"""``runware-archive serve --workers N``: gunicorn workers plus the fetcher as its own process.

``serve`` prepares the data folder once (secret, migrations, WAL), so workers never race
to create them, then execs a fresh interpreter as the gunicorn master (same pid): each
worker builds its own app (own connections). The image fetcher runs as
``runware-archive worker`` beside them, and stops with them; so does Litestream, with
``RUNWARE_ARCHIVE_REPLICA`` (:mod:`receiver.replica`), stopped last so it syncs the last
writes.

Why a fresh interpreter: gevent's worker monkey-patches after the fork, so whatever the
master imported is not patched. ``serve`` has imported requests, hence urllib3, which keeps
direct references to the stdlib's ``ssl.SSLContext``: every worker printed gevent's
"Monkey-patching ssl after ssl has already been imported" warning, and urllib3's TLS would
have blocked the worker's event loop. The fresh master imports gunicorn and this module
only; the app, requests included, is imported in each worker after the patch.
"""

import os
import shutil
import subprocess
import sys

from gunicorn.app.base import BaseApplication

from receiver import create_app, gunicorn_conf, replica

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
    """Become the gunicorn master: exec ``python -m receiver.production`` (see above)."""
    os.environ["RUNWARE_ARCHIVE_DIR"] = app.config["RUNWARE_ARCHIVE_DIR"]
    fetcher = "fetcher" if app.config["RUNWARE_ARCHIVE_FETCHER"] != "off" else "no-fetcher"
    copy = "replica" if replica.target(app.config) else "no-replica"
    app.extensions["catalogue"].close()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "receiver.production",
                              bind, str(workers), fetcher, copy])


def run_master(bind, workers, fetcher=True, copy=False):
    """Run gunicorn until it exits, with the fetcher process (and Litestream) beside it."""
    config = replica.load_settings() if copy else None
    litestream = replica.start(config) if copy else None
    process = start_fetch_worker() if fetcher else None
    try:
        ArchiveGunicorn(bind, workers).run()
    finally:
        if process is not None:
            process.terminate()
            process.wait(10)
        replica.stop(litestream, config)


if __name__ == "__main__":  # what serve_with_gunicorn execs: BIND WORKERS fetcher replica
    run_master(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "fetcher",
               sys.argv[4:5] == ["replica"])
