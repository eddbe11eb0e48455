"""The webhookURL comes from configuration only, never a header. Over real loopback HTTP
(receiver/config.py ``public_url``)."""

import uuid

import pytest
import requests

from receiver import config as settings
from receiver import create_app
from tests.conftest import LiveServer
from tests.fakes import provider  # noqa: F401  (the fixture)

EVIL = "evil.example"
MODEL = "runware:twinflow-z-image-turbo@0"


def new_task(**fields):
    return {"taskUUID": str(uuid.uuid4()), "model": MODEL, "positivePrompt": "a harbor",
            "width": 256, "height": 256, **fields}


@pytest.fixture
def servers(app_config, monkeypatch):
    """Live servers on apps built with extra settings."""
    for key in list(settings.DEFAULTS):
        monkeypatch.delenv(key, raising=False)
    made = []

    def make(**config):
        made.append(LiveServer(create_app(dict(app_config, **config))).start())
        return made[-1]

    yield make
    for server in made:
        server.stop()


# --- the webhookURL -------------------------------------------------------------------------


@pytest.fixture
def runware(servers, provider):
    """A server with a key and the fake provider."""
    def make(**config):
        return servers(RUNWARE_API_KEY="test-key", RUNWARE_API_URL=provider.url, **config)
    return make


@pytest.mark.parametrize("public", ["https://archive.example/", None])
def test_a_forged_host_never_becomes_the_webhook_url(runware, provider, public):
    server = runware(RUNWARE_ARCHIVE_PUBLIC_URL=public)
    task = new_task()
    response = requests.post(server.url + "/api/tasks", json=task, timeout=10,
                             headers={"Host": EVIL, "X-Forwarded-Host": EVIL})
    assert response.status_code == 202, response.text
    sent, = provider.tasks()
    base = "https://archive.example" if public else server.url  # the recorded address
    assert sent["webhookURL"].startswith(f"{base}/webhooks/runware/{task['taskUUID']}?token=")


def test_without_a_public_url_runware_itself_is_never_sent_a_task(servers):
    # Runware's own endpoint would be this; a name that never resolves keeps the test here.
    server = servers(RUNWARE_API_KEY="real-key", RUNWARE_API_URL="https://runware.invalid/v1")
    assert settings.public_url(server.app.config) is None
    task = new_task()
    response = requests.post(server.url + "/api/tasks", json=task, timeout=30)
    assert response.status_code == 503, response.text
    error, = response.json()["errors"]
    assert error["code"] == "publicURLRequired"
    assert "RUNWARE_ARCHIVE_PUBLIC_URL" in error["message"]
    assert server.app.extensions["catalogue"].list_tasks() == []
