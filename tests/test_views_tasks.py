"""The task page, its buttons (re-run, star, delete) and POST /api/tasks/<uuid>/rerun."""

import json
import os
import re

import pytest

from protocol.schemas import RANDOM_SEED_MAX
from archive import budget_store
from tests.history_helpers import archive, deliver, make_task, picture
from tests.views_helpers import (  # noqa: F401
    app_config, catalogue, csrf, provider, store, text,
)

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


def test_the_task_page_shows_everything(app, client, catalogue, store):
    task = make_task(catalogue, "a tidal library atrium", negativePrompt="blurry text",
                     steps=4, CFGScale=3.5, numberResults=2, label="client-a")
    catalogue.mark_acknowledged(task, ack={"data": [{"taskUUID": task}]})
    first, second = deliver(catalogue, task, 67706, 67707, cost=0.0013)
    sha = archive(catalogue, store, first, picture(2))
    page = text(client.get(f"/tasks/{task}"))
    for expected in ("a tidal library atrium", "blurry text", "67706", "67707", "$0.0013",
                     "$0.0026", "client-a", f'href="/download/{first}"',
                     f'src="/thumbs/{sha}.webp"', "acknowledged by the provider",
                     "delivery accepted", "archived", "CFGScale", "sandbox",
                     'data-copy="#request-json"', 'id="image-' + second + '"'):
        assert expected in page, expected
    request_json = re.search(r'<pre id="request-json" class="code">(.*?)</pre>', page, re.S)[1]
    params = json.loads(request_json.replace("&#34;", '"').replace("&quot;", '"'))
    assert params["taskUUID"] == task and params["numberResults"] == 2
    assert "token=" not in page and "?token" not in page  # stored without its query
    assert params["webhookURL"].endswith(f"/webhooks/runware/{task}")
    assert 'data-live="1"' in page  # the second image is still being archived
    assert app.extensions["webhook_secret"].hex() not in page
    assert app.config["SECRET_KEY"] not in page


def test_a_finished_task_stops_polling_and_a_failed_one_says_why(client, catalogue, store):
    done = make_task(catalogue)
    archive(catalogue, store, deliver(catalogue, done, 1)[0], picture(1))
    assert 'data-live="0"' in text(client.get(f"/tasks/{done}"))
    failed = make_task(catalogue)
    catalogue.mark_failed(failed, code="timeoutProvider", message="the provider timed out")
    page = text(client.get(f"/tasks/{failed}"))
    assert "timeoutProvider" in page and "the provider timed out" in page
    assert 'data-live="0"' in page


def test_a_hostile_prompt_is_text(client, catalogue):
    task = make_task(catalogue, HOSTILE)
    deliver(catalogue, task, 1)
    for path in (f"/tasks/{task}", "/", f"/tasks/{task}/delete", f"/new?from={task}"):
        page = text(client.get(path))
        assert "<script>alert" not in page and "<img src=x" not in page, path
        assert "&lt;script&gt;" in page, path


def test_an_unknown_task_is_404(client):
    response = client.get("/tasks/00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404 and "no task" in text(response)


def test_the_verdicts_and_the_lineage(client, catalogue, store):
    parent = make_task(catalogue, "a copper aviary", seed=84065)
    exact = make_task(catalogue, "a copper aviary", seed=84065, parent=parent, rerun_mode="exact")
    other = make_task(catalogue, "a copper aviary", seed=5, parent=parent, rerun_mode="new-seed")
    original = picture(4)
    archive(catalogue, store, deliver(catalogue, parent, 84065)[0], original)
    archive(catalogue, store, deliver(catalogue, exact, 84065)[0], original)
    archive(catalogue, store, deliver(catalogue, other, 5)[0], picture(9))

    page = text(client.get(f"/tasks/{exact}"))
    assert 'data-verdict="identical bytes"' in page and "same seed" in page
    assert f'href="/tasks/{parent}"' in page and "Nothing changed in the request" in page
    assert f'href="/tasks/{other}"' in page  # a sibling: the same request, another seed

    page = text(client.get(f"/tasks/{other}"))
    assert 'data-verdict="differs"' in page and "compared by position" in page
    assert re.search(r"Seed <code class=\"field-name\">seed</code></th><td class=\"before\">84065</td><td class=\"after\">5", page)

    page = text(client.get(f"/tasks/{parent}"))
    assert "Re-runs of this task" in page
    assert page.count('data-verdict="identical bytes"') == 1
    assert page.count('data-verdict="differs"') == 1


def test_rerun_exact_from_the_button_reuses_the_seed(client, catalogue, provider):
    parent = make_task(catalogue, "a lantern bazaar")  # sent without a seed
    deliver(catalogue, parent, 18259)
    response = client.post(f"/tasks/{parent}/rerun",
                           data={"mode": "exact", "csrf_token": csrf(client)})
    assert response.status_code == 303
    child = response.headers["Location"].rsplit("/", 1)[1]
    sent = provider.tasks()[-1]
    assert sent["taskUUID"] == child and sent["seed"] == 18259
    assert sent["positivePrompt"] == "a lantern bazaar"
    row = catalogue.get_task(child)
    assert (row["parent_task_uuid"], row["rerun_mode"]) == (parent, "exact")


def test_rerun_exact_of_a_batch_without_a_seed_is_one_task_per_image(client, catalogue, provider):
    parent = make_task(catalogue, "ice harbor", numberResults=3)
    deliver(catalogue, parent, 40, 7, 1234)
    response = client.post(f"/tasks/{parent}/rerun",
                           data={"mode": "exact", "csrf_token": csrf(client)})
    assert response.status_code == 303
    sent = provider.tasks()
    assert [(t["seed"], t["numberResults"]) for t in sent] == [(40, 1), (7, 1), (1234, 1)]
    assert all(catalogue.get_task(t["taskUUID"])["parent_task_uuid"] == parent for t in sent)


def test_rerun_exact_of_a_seeded_batch_sends_the_same_request(client, catalogue, provider):
    parent = make_task(catalogue, "ice harbor", seed=10, numberResults=2)
    deliver(catalogue, parent, 10, 11)
    client.post(f"/tasks/{parent}/rerun", data={"mode": "exact", "csrf_token": csrf(client)})
    assert [(t["seed"], t["numberResults"]) for t in provider.tasks()] == [(10, 2)]


def test_rerun_exact_without_any_seed_known_is_refused(client, catalogue, provider):
    parent = make_task(catalogue, "nothing arrived")
    response = client.post(f"/tasks/{parent}/rerun",
                           data={"mode": "exact", "csrf_token": csrf(client)})
    # Post-redirect-get: back to the task page, which says why; a reload sends nothing.
    assert response.status_code == 303 and response.headers["Location"] == f"/tasks/{parent}"
    page = client.get(response.headers["Location"])
    assert page.status_code == 200 and "seed is not known yet" in text(page)
    assert "seed is not known yet" not in text(client.get(f"/tasks/{parent}"))  # said once
    assert provider.tasks() == []


def test_new_seed_is_fresh_and_32_bit(client, catalogue, provider):
    parent = make_task(catalogue, "a harbor", seed=77)
    seeds = set()
    for _ in range(3):
        client.post(f"/tasks/{parent}/rerun", data={"mode": "new-seed", "csrf_token": csrf(client)})
    seeds = {t["seed"] for t in provider.tasks()}
    assert 77 not in seeds and all(0 <= s <= RANDOM_SEED_MAX for s in seeds)
    assert len(seeds) == 3


def test_a_budget_refusal_shows_its_message(app, client, catalogue, provider):
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily="0.0001")
    parent = make_task(catalogue, "a harbor", seed=1)
    response = client.post(f"/tasks/{parent}/rerun",
                           data={"mode": "exact", "csrf_token": csrf(client)},
                           follow_redirects=True)
    assert response.status_code == 200 and response.request.path == f"/tasks/{parent}"
    assert "The re-run was not sent" in text(response) and "budget" in text(response).lower()
    assert provider.tasks() == []


@pytest.mark.parametrize("body,status,parameter", [
    ({"mode": "sideways"}, 422, "mode"),
    ({}, 422, "mode"),
    ({"mode": "exact", "steps": 99}, 422, "steps"),
    ({"mode": "exact", "webhookURL": "https://evil.example/"}, 422, "webhookURL"),
])
def test_rerun_api_refusals(client, catalogue, provider, body, status, parameter):
    parent = make_task(catalogue, seed=1)
    response = client.post(f"/api/tasks/{parent}/rerun", json=body)
    assert response.status_code == status
    assert parameter in [e["parameter"] for e in response.get_json()["errors"]]
    assert provider.tasks() == []


def test_rerun_api_modes_and_overrides(client, catalogue, provider):
    parent = make_task(catalogue, "a harbor")
    deliver(catalogue, parent, 4242)
    exact = client.post(f"/api/tasks/{parent}/rerun", json={"mode": "exact"})
    assert exact.status_code == 202
    body = exact.get_json()
    assert body["parentTaskUUID"] == parent and body["rerunMode"] == "exact"
    assert provider.tasks()[-1]["seed"] == 4242
    detail = client.get(f"/api/tasks/{body['taskUUID']}").get_json()
    assert (detail["parentTaskUUID"], detail["rerunMode"]) == (parent, "exact")

    fresh = client.post(f"/api/tasks/{parent}/rerun", json={"mode": "new-seed", "steps": 8})
    assert fresh.status_code == 202
    sent = provider.tasks()[-1]
    assert sent["steps"] == 8 and sent["seed"] != 4242
    missing = client.post("/api/tasks/00000000-0000-4000-8000-000000000000/rerun",
                          json={"mode": "exact"})
    assert missing.status_code == 404


def test_star_and_unstar(client, catalogue):
    task = make_task(catalogue)
    image = deliver(catalogue, task, 1)[0]
    token = csrf(client)
    response = client.post(f"/results/{image}/star",
                           data={"starred": "1", "next": f"/tasks/{task}", "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"] == f"/tasks/{task}"
    assert catalogue.get_task(task)["results"][0]["starred"] == 1
    assert 'aria-pressed="true"' in text(client.get(f"/tasks/{task}"))
    client.post(f"/results/{image}/star",
                data={"starred": "0", "next": "https://evil.example/", "csrf_token": token})
    assert catalogue.get_task(task)["results"][0]["starred"] == 0
    assert client.post("/results/nope/star", data={"starred": "1", "csrf_token": token}).status_code == 404


def test_delete_asks_then_removes_rows_and_unshared_files(client, catalogue, store):
    task = make_task(catalogue, "to be deleted")
    keep = make_task(catalogue, "keeps a shared file")
    shared_bytes = picture(1)
    own = archive(catalogue, store, deliver(catalogue, task, 1)[0], picture(2))
    shared = archive(catalogue, store, deliver(catalogue, task, 2)[0], shared_bytes)
    archive(catalogue, store, deliver(catalogue, keep, 3)[0], shared_bytes)
    for sha in (own, shared):
        os.utime(store.path(sha, "jpg"), (1, 1))
    token = csrf(client)

    asked = client.get(f"/tasks/{task}/delete")
    assert asked.status_code == 200 and "Delete this task?" in text(asked)
    unconfirmed = client.post(f"/tasks/{task}/delete", data={"csrf_token": token})
    assert unconfirmed.status_code == 200 and catalogue.get_task(task) is not None

    done = client.post(f"/tasks/{task}/delete", data={"csrf_token": token, "confirm": "yes"})
    assert done.status_code == 303
    assert catalogue.get_task(task) is None
    assert not os.path.exists(store.path(own, "jpg"))
    assert os.path.exists(store.path(shared, "jpg"))
    assert "1 file(s) no other task shares were removed" in text(client.get("/"))
    assert client.get(f"/tasks/{task}").status_code == 404


def test_one_image_is_rerun_alone_with_its_seed(client, catalogue, provider):
    parent = make_task(catalogue, "a harbor", numberResults=3, steps=6)
    images = deliver(catalogue, parent, 11, 12, 13)
    response = client.post(f"/results/{images[1]}/rerun", data={"csrf_token": csrf(client)})
    assert response.status_code == 303
    child = re.fullmatch(r"/tasks/([0-9a-f-]{36})", response.headers["Location"])[1]
    sent = provider.tasks()
    assert [(t["seed"], t["numberResults"], t["steps"]) for t in sent] == [(12, 1, 6)]
    row = catalogue.get_task(child)
    assert (row["parent_task_uuid"], row["rerun_mode"]) == (parent, "exact")


def test_an_image_rerun_refused_goes_back_to_the_task_page(app, client, catalogue, provider):
    parent = make_task(catalogue, "a harbor")
    image = deliver(catalogue, parent, 5)[0]
    budget_store.set_limits(app.extensions["catalogue"], "cli", daily="0.0001")
    response = client.post(f"/results/{image}/rerun", data={"csrf_token": csrf(client)})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/tasks/{parent}#image-{image}"
    page = text(client.get(f"/tasks/{parent}"))
    assert "The re-run was not sent" in page and "budget" in page.lower()
    assert provider.tasks() == []


def test_an_image_rerun_needs_its_csrf_token_and_a_real_image(client, catalogue, provider):
    image = deliver(catalogue, make_task(catalogue), 5)[0]
    assert client.post(f"/results/{image}/rerun").status_code == 400
    assert client.post(f"/results/{image}/rerun", data={"csrf_token": "x"}).status_code == 403
    token = csrf(client)
    for bad in ("00000000-0000-4000-8000-000000000000", "nope", "a" * 300):
        assert client.post(f"/results/{bad}/rerun", data={"csrf_token": token}).status_code == 404
    assert client.get(f"/results/{image}/rerun").status_code == 405
    assert provider.tasks() == []


def test_star_answers_json_to_a_script(client, catalogue):
    image = deliver(catalogue, make_task(catalogue), 1)[0]
    response = client.post(f"/results/{image}/star", data={"starred": "1"},
                           headers={"X-CSRF-Token": csrf(client), "Accept": "application/json"})
    assert response.status_code == 200
    assert response.get_json() == {"imageUUID": image, "starred": True}
    refused = client.post(f"/results/{image}/star", data={"starred": "0"},
                          headers={"Accept": "application/json"})
    assert refused.status_code == 400
    assert catalogue.conn.execute("SELECT starred FROM results").fetchone()[0] == 1
