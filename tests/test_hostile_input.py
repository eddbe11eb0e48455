"""Bad input answers 4xx, never 5xx; and the databases are kept private to their owner
(0600)."""

import logging
import os

from receiver import config as app_settings
from receiver import create_app
from tests.history_helpers import make_task


# -- the databases are private ---------------------------------------------------------

def modes(folder, name):
    return {suffix: os.stat(folder / f"{name}{suffix}").st_mode & 0o777
            for suffix in ("", "-wal", "-shm")}


def started(folder, monkeypatch):
    for key in app_settings.DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    app = create_app({"TESTING": True, "RUNWARE_ARCHIVE_DIR": str(folder),
                      "RUNWARE_ARCHIVE_FETCHER": "off"})
    assert app.config["PROVIDER"] == "sandbox"
    make_task(app.extensions["catalogue"])  # a write: the WAL is in use
    assert app.test_client().get("/healthz").status_code == 200
    return app


def test_the_catalogue_and_the_sandbox_database_are_created_private(tmp_path, monkeypatch):
    previous = os.umask(0o022)  # the usual umask, which alone would leave them 0644
    try:
        started(tmp_path, monkeypatch)
    finally:
        os.umask(previous)
    private = {"": 0o600, "-wal": 0o600, "-shm": 0o600}
    assert modes(tmp_path, "catalogue.db") == private
    assert modes(tmp_path, "sandbox.db") == private


def test_databases_open_to_others_are_tightened_and_it_is_said(tmp_path, monkeypatch,
                                                               caplog):
    started(tmp_path, monkeypatch)
    for name in ("catalogue.db", "sandbox.db"):
        os.chmod(tmp_path / name, 0o644)
        os.chmod(tmp_path / f"{name}-wal", 0o664)
    with caplog.at_level(logging.WARNING, logger="archive.catalogue"):
        started(tmp_path, monkeypatch)
    for name in ("catalogue.db", "sandbox.db"):
        assert modes(tmp_path, name)[""] == 0o600 and modes(tmp_path, name)["-wal"] == 0o600
        assert f"{name} was open to others (644); now 600" in caplog.text
