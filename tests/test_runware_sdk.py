"""The sandbox as Runware's own Python SDK (``runware-sdk``, REST transport) sees it: a
client nobody here wrote, pointed at the sandbox over real loopback HTTP, generates with
async delivery (``getResponse`` polling) and with sync delivery, and reads a failed
generation as the error Runware would have sent."""

import asyncio
import uuid

import pytest
from runware import Runware, RunwareError

from receiver import config as settings
from sandbox.guard import sandbox_key
from protocol.schemas import MODEL_ID


@pytest.fixture
def app_config(app_config):
    return dict(app_config, RUNWARE_SANDBOX_RESULT_DELAY=0.05)


def run(live_server, **task):
    """One task through the SDK; its list of results."""
    async def go():
        client = Runware(api_key=sandbox_key(live_server.app.config), transport="rest",
                         http_base_url=live_server.url + settings.SANDBOX_PATH,
                         timeout=20_000, poll_timeout=20_000, max_retries=0)
        try:
            return await client.run({
                "taskType": "imageInference", "taskUUID": str(uuid.uuid4()), "model": MODEL_ID,
                "positivePrompt": "a tidal library atrium interior", "width": 512,
                "height": 384, "includeCost": True, **task})
        finally:
            await client.close()

    return asyncio.run(go())


@pytest.mark.parametrize("delivery", ["async", "sync"])
def test_the_sdk_generates_against_the_sandbox(live_server, delivery):
    results = run(live_server, numberResults=2, seed=67706, deliveryMethod=delivery)
    assert sorted(r["seed"] for r in results) == [67706, 67707]
    assert all(r["cost"] > 0 and r["imageURL"].startswith(live_server.url) for r in results)
    assert len({r["imageUUID"] for r in results}) == 2


@pytest.mark.parametrize("delivery", ["async", "sync"])
def test_the_sdk_reads_a_failed_generation_as_an_error(app, live_server, delivery):
    app.config["RUNWARE_SANDBOX_FAULTS"] = "fail=1"
    with pytest.raises(RunwareError) as info:
        run(live_server, deliveryMethod=delivery)
    assert "failed on purpose" in info.value.message


def test_the_sdk_sees_runwares_validation_error(live_server):
    with pytest.raises(RunwareError) as info:
        run(live_server, positivePrompt="x")
    assert info.value.code == "validation"
    assert "positivePrompt" in info.value.message
