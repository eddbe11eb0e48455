"""The keys page ``/keys`` lists every client key with its budgets, spend and task count,
escapes what a label holds, and says that keys are made and revoked in the CLI."""

import uuid

import pytest

from archive import keys
from protocol.schemas import MODEL_ID
from tests.views_helpers import text

LABEL = '<script>alert("x")</script> & co'


@pytest.fixture
def catalogue(app):
    return app.extensions["catalogue"]


def a_task_with_a_result(catalogue, key_id, cost):
    task_uuid = str(uuid.uuid4())
    catalogue.create_task({"task_uuid": task_uuid, "model": MODEL_ID, "positive_prompt": "p",
                           "number_results": 1, "params": {}, "provider": "runware",
                           "key_id": key_id, "status": "submitted"})
    catalogue.ingest(task_uuid, results=[{
        "taskType": "imageInference", "taskUUID": task_uuid, "imageUUID": str(uuid.uuid4()),
        "imageURL": "https://im.runware.ai/image/x.jpg", "seed": 1, "cost": cost}])


def test_the_page_lists_a_key_with_its_spend_and_escapes_its_label(client, catalogue):
    row, secret = keys.create(catalogue, LABEL, daily=2.5)
    a_task_with_a_result(catalogue, row["id"], 0.0125)
    revoked, _ = keys.create(catalogue, "old laptop")
    keys.revoke(catalogue, revoked["id"])
    response = client.get("/keys")
    assert response.status_code == 200
    page = text(response)
    assert LABEL not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co" in page
    assert "$0.0125" in page and "$2.5000" in page
    assert secret not in page and "old laptop" in page
    assert '<td class="num">1</td>' in page  # its one task
    assert 'class="revoked"' in page
    assert "runware-archive keys create" in page and "runware-archive keys revoke" in page
    assert 'href="/keys"' in page  # the menu


def test_without_keys_the_page_says_how_to_make_one(client):
    assert "No key yet" in text(client.get("/keys"))
