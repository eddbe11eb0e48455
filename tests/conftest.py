"""Shared fixtures: an app on a real temporary data folder, clients, a live loopback server,
and a :class:`WebhookSender` that posts Runware-shaped deliveries (flaskr's ``AuthActions``)."""

import json
import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
import requests
from hypothesis import settings as hypothesis_settings
from werkzeug.serving import make_server

from archive.catalogue import Catalogue
from receiver import config as settings
from receiver import create_app
from receiver.worker import make_fetcher
from receiver.cli import RedactingRequestHandler
from receiver.provider.tokens import make_token
from sandbox.state import SandboxState

# No per-example deadline for Hypothesis: its default (200 ms) is a timing assertion, and on a
# shared two-core machine a slow moment failed property tests that had found nothing wrong.
hypothesis_settings.register_profile("shared-machine", deadline=None)
hypothesis_settings.load_profile("shared-machine")

# The browser fixtures (Playwright + Chromium + axe-core), for every test_browser*.py file.
pytest_plugins = ["tests.browser_support"]

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_SEED_EXAMPLES = SHARED / "fixtures" / "seed-examples.json"
# A copy kept with the tests, so they run in a checkout that has no ../shared beside it;
# tests/test_docs.py checks that it matches the shared file wherever that one exists.
SEED_EXAMPLES = Path(__file__).resolve().parent / "fixtures" / "seed-examples.json"


def seed_examples():
    """The four example tasks of the original specification, with their results."""
    return json.loads(SEED_EXAMPLES.read_text())["examples"]


@pytest.fixture(scope="session")
def catalogue_template(tmp_path_factory):
    """One catalogue migrated for the whole session, which tests copy instead of migrating
    their own: migrating commits each version with an fsync, and a thousand tests paid
    it. Copies are made by :func:`copy_catalogue`; tests of the migrations themselves, or
    of a catalogue's first creation, still make theirs from nothing."""
    path = tmp_path_factory.mktemp("catalogue-template") / "catalogue.db"
    catalogue = Catalogue(path)
    catalogue.migrate()
    catalogue.close()
    conn = sqlite3.connect(path)
    try:
        # Everything into the main file and the WAL emptied: the main file alone is then
        # the whole database (still in WAL mode, which the file's header records).
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        assert busy == 0, "the template's checkpoint was blocked"
    finally:
        conn.close()
    # Nothing but copyfile opens it; read-only all the same (root ignores it, but a run
    # as a user then fails loudly if a change ever writes into the template).
    os.chmod(path, 0o400)
    return path


@pytest.fixture(scope="session")
def sandbox_template(tmp_path_factory):
    """The sandbox's ``sandbox.db`` made once, as :func:`catalogue_template` does for the
    catalogue: making it (its schema, WAL) was a third of mounting the sandbox in every
    app."""
    folder = tmp_path_factory.mktemp("sandbox-template")
    state = SandboxState(folder)
    state.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    state.conn.close()
    os.chmod(folder / "sandbox.db", 0o400)
    return folder / "sandbox.db"


def copy_catalogue(template, path):
    """``path`` made a private copy of the migrated ``template`` (unless a catalogue is
    already there: a test that put its own keeps it); returns ``path``."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, path)
        os.chmod(path, 0o600)  # the catalogue is private, as make_private keeps it
    return path


@pytest.fixture
def migrated_copy(catalogue_template):
    """``migrated_copy(path)``: a copy of the session's migrated catalogue at ``path``,
    for tests that open a :class:`Catalogue` of their own."""
    return lambda path: copy_catalogue(catalogue_template, path)


@pytest.fixture
def data_dir(tmp_path, catalogue_template, sandbox_template):
    """A data folder of the test's own, holding only an empty, migrated catalogue and the
    sandbox's empty state (copies of the session's templates, so ``create_app`` finds
    them ready)."""
    folder = tmp_path / "data"
    folder.mkdir()
    copy_catalogue(catalogue_template, folder / "catalogue.db")
    copy_catalogue(sandbox_template, folder / "sandbox.db")
    return folder


@pytest.fixture
def app_config(data_dir):
    """The test mapping for ``create_app``; tests may add to it before ``app`` is made."""
    return {"TESTING": True, "RUNWARE_ARCHIVE_DIR": str(data_dir),
            "RUNWARE_ARCHIVE_SUBMIT_RETRIES": 1, "RUNWARE_ARCHIVE_SUBMIT_BACKOFF": 0.01}


@pytest.fixture
def app(app_config, monkeypatch, catalogue_template):
    """The app, with no ``RUNWARE_*`` variable of the caller's environment leaking in."""
    for key in list(settings.DEFAULTS):
        monkeypatch.delenv(key, raising=False)
    # A test may have pointed the app at another folder: that one gets a copy too.
    copy_catalogue(catalogue_template, Path(app_config["RUNWARE_ARCHIVE_DIR"]) / "catalogue.db")
    return create_app(app_config)


@pytest.fixture
def client(app):
    """Flask's test client."""
    return app.test_client()


@pytest.fixture
def runner(app):
    """Flask's CLI runner."""
    return app.test_cli_runner()


class LiveServer:
    """The app served by Werkzeug's threaded server on a free loopback port, in a thread."""

    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True,
                                  request_handler=RedactingRequestHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        settings.record_server_address(app.config, self.url)
        # shutdown() waits for serve_forever's next look at its flag, up to this poll
        # interval: 5 ms, not 50, as hundreds of tests stop a server.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.005,),
                                       daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def live_server(app):
    """The app on a real loopback port (``live_server.url``)."""
    server = LiveServer(app).start()
    yield server
    server.stop()


class WebhookSender:
    """Posts Runware-shaped deliveries to a task's webhook URL."""

    def __init__(self, base_url, secret):
        self.base_url, self.secret = base_url, secret

    def url(self, task_uuid, token=None):
        token = make_token(task_uuid, secret=self.secret) if token is None else token
        query = f"?token={token}" if token != "" else ""
        return f"{self.base_url}/webhooks/runware/{task_uuid}{query}"

    def post(self, task_uuid, payload, *, token=None, raw=None, headers=None):
        body = raw if raw is not None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", **(headers or {})}
        return requests.post(self.url(task_uuid, token), data=body, headers=headers,
                             timeout=10)

    def result(self, task_uuid, result, *, envelope=True, **kwargs):
        """One result, in the ``{"data": [...]}`` envelope or as a bare object."""
        payload = {"data": [result]} if envelope else result
        return self.post(task_uuid, payload, **kwargs)


@pytest.fixture
def sender(live_server):
    """A :class:`WebhookSender` aimed at the live server."""
    return WebhookSender(live_server.url, live_server.app.extensions["webhook_secret"])


@pytest.fixture
def live_server_factory(monkeypatch, catalogue_template):
    """Make live servers on data folders of the test's choosing (stopped afterwards)."""
    for key in list(settings.DEFAULTS):
        monkeypatch.delenv(key, raising=False)
    servers = []

    def make(data_dir, **config):
        copy_catalogue(catalogue_template, Path(data_dir) / "catalogue.db")
        app = create_app({"TESTING": True, "RUNWARE_ARCHIVE_DIR": str(data_dir),
                          "RUNWARE_API_KEY": "test", **config})
        servers.append(LiveServer(app).start())
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def fetcher(live_server):
    """The live server's image fetcher running in a thread (no reconcile pass), polling
    often, stopped afterwards."""
    fetcher = make_fetcher(live_server.app, reconcile=False)
    fetcher.poll_interval = 0.05
    stop = fetcher.start()
    yield fetcher
    stop.set()
