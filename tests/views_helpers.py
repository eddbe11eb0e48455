"""Helpers for the HTML view tests: a fake provider app, CSRF tokens read from a page, and
a catalogue filled through the same paths the service uses."""

import re

import pytest

from receiver.storage import get_store
from tests.fakes import provider  # noqa: F401  (the fixture, for the views' tests)

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(client, path="/new"):
    """The session's CSRF token, as a page hands it out."""
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    return TOKEN.search(response.get_data(as_text=True))[1]


def text(response):
    return response.get_data(as_text=True)


@pytest.fixture
def app_config(app_config, provider):
    """The app talks to the fake provider, and never starts a fetcher."""
    return dict(app_config, RUNWARE_API_KEY="test-key", RUNWARE_API_URL=provider.url,
                RUNWARE_ARCHIVE_FETCHER="off")


@pytest.fixture
def catalogue(app):
    return app.extensions["catalogue"]


@pytest.fixture
def store(app):
    return get_store(app)
