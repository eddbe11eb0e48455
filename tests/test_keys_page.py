"""The keys page ``/keys`` lists every client key with its budgets, spend and task count,
escapes what a label holds, makes a key (shown once, never cached) and revokes one, both
only with the session's CSRF token."""

import uuid

import pytest

from archive import keys
from protocol.schemas import MODEL_ID
from tests.views_helpers import csrf, text

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


def test_a_key_made_on_the_page_is_shown_once_and_works(client, catalogue):
    token = csrf(client, "/keys")
    made = client.post("/keys", data={"csrf_token": token, "label": "notebook",
                                      "daily_budget": "2", "monthly_budget": ""})
    assert made.status_code == 200 and made.headers["Cache-Control"] == "no-store"
    secret = keys.PREFIX + text(made).split(keys.PREFIX, 1)[1].split("<", 1)[0]
    row = keys.authenticate(catalogue.conn, secret)
    assert (row["label"], row["daily_budget"], row["monthly_budget"]) == ("notebook", 2.0, None)
    assert secret not in text(client.get("/keys"))


def test_forms_without_the_csrf_token_are_refused(client, catalogue):
    row, _ = keys.create(catalogue, "notebook")
    assert client.post("/keys", data={"label": "sneaky"}).status_code == 400
    assert client.post(f"/keys/{row['id']}/revoke").status_code == 400
    assert [k["label"] for k in keys.list_keys(catalogue.conn)] == ["notebook"]
    assert keys.list_keys(catalogue.conn)[0]["revoked_at"] is None


def test_a_key_is_revoked_on_the_page(client, catalogue):
    row, secret = keys.create(catalogue, "notebook")
    token = csrf(client, "/keys")
    revoked = client.post(f"/keys/{row['id']}/revoke", data={"csrf_token": token})
    assert revoked.status_code == 303
    assert keys.authenticate(catalogue.conn, secret) is None
    again = client.post(f"/keys/{row['id']}/revoke", data={"csrf_token": token})
    assert again.status_code == 404
    assert client.post(f"/keys/{2**63}/revoke", data={"csrf_token": token}).status_code == 404


@pytest.mark.parametrize("field, value", [("daily_budget", "-1"), ("monthly_budget", "nan"),
                                          ("daily_budget", "lots"), ("label", " ")])
def test_a_bad_form_makes_no_key(client, catalogue, field, value):
    token = csrf(client, "/keys")
    answer = client.post("/keys", data={"csrf_token": token, "label": "notebook",
                                        field: value})
    assert answer.status_code == 400 and keys.PREFIX not in text(answer)
    assert keys.list_keys(catalogue.conn) == []
