"""Fuzzed webhook bodies never give a 5xx, and never store a row they should not."""

import json
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from receiver.provider.tokens import make_token

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=20,
)
FIELDS = ["taskType", "taskUUID", "imageUUID", "imageURL", "imageBase64Data",
          "imageDataURI", "seed", "cost", "NSFWContent", "status", "code", "message"]
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def make_task(app):
    task_uuid = str(uuid.uuid4())
    app.extensions["catalogue"].create_task({
        "task_uuid": task_uuid, "model": "runware:twinflow-z-image-turbo@0",
        "positive_prompt": "a koi pond", "params": {}, "provider": "runware",
        "number_results": 1, "status": "submitted"})
    return task_uuid


def post(client, app, task_uuid, body):
    token = make_token(task_uuid, secret=app.extensions["webhook_secret"])
    return client.post(f"/webhooks/runware/{task_uuid}?token={token}", data=body,
                       content_type="application/json")


def stored(app):
    return app.extensions["catalogue"].conn.execute("SELECT count(*) FROM results").fetchone()[0]


@FUZZ
@given(body=st.binary(max_size=300) | JSON.map(lambda v: json.dumps(v).encode()))
def test_arbitrary_bodies_are_refused_without_a_5xx(app, client, body):
    task_uuid = make_task(app)
    response = post(client, app, task_uuid, body)
    assert response.status_code in (200, 400, 409, 413), response.data
    if response.status_code == 200:  # progress or an error report: no result stored
        assert response.get_json()["verdict"] in ("progress", "failed")
    assert stored(app) == 0


@FUZZ
@given(field=st.sampled_from(FIELDS), value=JSON, envelope=st.booleans())
def test_mutated_deliveries_never_5xx_and_store_only_valid_ones(app, client, field, value,
                                                                 envelope):
    task_uuid = make_task(app)
    item = {"taskType": "imageInference", "taskUUID": task_uuid,
            "imageUUID": str(uuid.uuid4()), "imageURL": "https://im.runware.ai/x.jpg",
            "seed": 5, "cost": 0.0006}
    item[field] = value
    before = stored(app)
    response = post(client, app, task_uuid,
                    json.dumps({"data": [item]} if envelope else item).encode())
    assert response.status_code < 500, response.data
    if response.status_code == 200:
        rows = app.extensions["catalogue"].conn.execute(
            "SELECT image_uuid, seed FROM results WHERE task_uuid = ?", (task_uuid,)).fetchall()
        assert len(rows) <= 1 and stored(app) <= before + 1
    else:
        assert stored(app) == before
