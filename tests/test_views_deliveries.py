"""The delivery log /deliveries: filters, keyset pages, raw bodies escaped, never a token."""

import re

from receiver.provider.tokens import make_token
from tests.history_helpers import make_task
from tests.views_helpers import app_config, catalogue, provider, text  # noqa: F401


def post_webhook(app, client, task, body, token=None):
    secret = app.extensions["webhook_secret"]
    token = make_token(task, secret=secret) if token is None else token
    return client.post(f"/webhooks/runware/{task}?token={token}", data=body,
                       content_type="application/json")


def result(task, image="0b0a8b7e-4a51-4d0e-9a8f-2d1e0c7b6a55", seed=1):
    return ('{"data": [{"taskType": "imageInference", "taskUUID": "%s", "imageUUID": "%s",'
            ' "imageURL": "https://im.runware.ai/image/ws/2/ii/%s.jpg", "seed": %d,'
            ' "cost": 0.0006, "note": "<b>bold</b>"}]}' % (task, image, image, seed))


def test_the_log_filters_and_never_shows_a_token(app, client, catalogue):
    task = make_task(catalogue)
    token = make_token(task, secret=app.extensions["webhook_secret"])
    assert post_webhook(app, client, task, result(task)).status_code == 200
    assert post_webhook(app, client, task, result(task)).status_code == 200  # duplicate
    assert post_webhook(app, client, task, result(task), token="f" * 64).status_code == 403
    assert post_webhook(app, client, task, '{"data": [').status_code == 400

    page = text(client.get("/deliveries"))
    assert page.count('<tr class="verdict-row-') == 4
    assert token not in page and "f" * 64 not in page
    for verdict, count in (("accepted", 1), ("duplicate", 1), ("rejected", 2)):
        filtered = text(client.get(f"/deliveries?verdict={verdict}"))
        assert filtered.count('<tr class="verdict-row-') == count, verdict
    by_reason = text(client.get("/deliveries?verdict=rejected&reason=malformed+JSON"))
    assert by_reason.count('<tr class="verdict-row-') == 1 and "malformed JSON" in by_reason
    assert 'option value="invalid token"' in page
    assert text(client.get(f"/deliveries?task={task}")).count('<tr class="verdict-row-') == 4
    assert text(client.get("/deliveries?verdict=bogus")).count('<tr class="verdict-row-') == 4
    stored = catalogue.conn.execute("SELECT group_concat(coalesce(body, '') || coalesce(reason, ''))"
                                    " FROM deliveries").fetchone()[0]
    assert token not in stored and "f" * 64 not in stored


def test_a_delivery_shows_its_body_escaped(app, client, catalogue):
    task = make_task(catalogue)
    post_webhook(app, client, task, result(task))
    delivery_id = catalogue.deliveries()[0]["id"]
    page = text(client.get(f"/deliveries/{delivery_id}"))
    body = re.search(r'<pre id="body" class="code">(.*?)</pre>', page, re.S)[1]
    assert "&lt;b&gt;bold&lt;/b&gt;" in body and "<b>" not in body
    assert f'href="/tasks/{task}"' in page
    assert client.get("/deliveries/999999").status_code == 404


def test_the_log_pages_by_id(app, client, catalogue):
    task = make_task(catalogue)
    for i in range(5):
        post_webhook(app, client, task, "{}", token="0" * 64)
    from archive import delivery_log
    rows, nxt = delivery_log.deliveries(catalogue.conn, limit=3)
    page = text(client.get(f"/deliveries?before={nxt}"))
    assert page.count('<tr class="verdict-row-') == 2


def test_the_body_size_is_what_arrived_not_what_the_log_kept(app, client, catalogue):
    task = make_task(catalogue, outputType="base64Data")
    image = "0b0a8b7e-4a51-4d0e-9a8f-2d1e0c7b6a56"
    data = "QUJD" * 20000  # 80,000 characters of base64
    body = ('{"data": [{"taskType": "imageInference", "taskUUID": "%s", "imageUUID": "%s",'
            ' "imageBase64Data": "%s", "seed": 3, "cost": 0.0006}]}' % (task, image, data))
    assert post_webhook(app, client, task, body).status_code == 200
    row = catalogue.deliveries(task_uuid=task)[0]
    assert row["body_size"] == len(body.encode()) and len(row["body"]) < 1000
    listed = text(client.get(f"/deliveries?task={task}"))
    assert f'<td class="num">{len(body)} B</td>' in listed
    page = re.sub(r"\s+", " ", text(client.get(f"/deliveries/{row['id']}")))
    assert f"{len(body):,} bytes as received; the log keeps {len(row['body']):,}" in page
    assert "inline image data replaced by its length" in page
    plain = result(task, image="0b0a8b7e-4a51-4d0e-9a8f-2d1e0c7b6a57", seed=4)
    post_webhook(app, client, task, plain)
    row = catalogue.deliveries(task_uuid=task)[0]
    assert row["body_size"] == len(plain)
    page = re.sub(r"\s+", " ", text(client.get(f"/deliveries/{row['id']}")))
    assert f"{len(plain):,} bytes as received</td>" in page


def test_a_cut_body_says_only_the_first_part_is_kept(app, client, catalogue):
    from archive.records import BODY_CAP
    task = make_task(catalogue)
    post_webhook(app, client, task, "x" * (BODY_CAP + 10))
    row = catalogue.deliveries(task_uuid=task)[0]
    page = re.sub(r"\s+", " ", text(client.get(f"/deliveries/{row['id']}")))
    assert f"{BODY_CAP + 10:,} bytes as received; the log keeps" in page
    assert "only the first part" in page
