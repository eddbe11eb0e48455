"""Requests addressed to another host name are refused (DNS rebinding), the webhookURL comes
from configuration only, never a header, and X-Forwarded-* count only with ProxyFix set.
Over real loopback HTTP (receiver/hosts.py, receiver/config.py ``public_url``)."""

import uuid

import pytest
import requests

from receiver import config as settings
from receiver import create_app
from receiver.hosts import LOOPBACK_NAMES, allowed_names, proxy_fix_counts
from tests.conftest import LiveServer
from tests.fakes import provider  # noqa: F401  (the fixture)

EVIL = "evil.example"
MODEL = "runware:twinflow-z-image-turbo@0"


def new_task(**fields):
    return {"taskUUID": str(uuid.uuid4()), "model": MODEL, "positivePrompt": "a harbor",
            "width": 256, "height": 256, **fields}


def make_task(catalogue):
    task_uuid = str(uuid.uuid4())
    catalogue.create_task({
        "task_uuid": task_uuid, "model": MODEL, "positive_prompt": "a harbor",
        "params": {"taskUUID": task_uuid}, "provider": "runware", "number_results": 1,
        "status": "submitted"})
    return task_uuid


def result_for(task_uuid):
    image = str(uuid.uuid4())
    return {"data": [{"taskType": "imageInference", "taskUUID": task_uuid, "imageUUID": image,
                      "imageURL": f"https://im.runware.ai/image/ii/{image}.jpg", "seed": 7,
                      "cost": 0.0006}]}


@pytest.fixture
def servers(app_config, monkeypatch):
    """Live servers on apps built with extra settings (ProxyFix is fixed when built)."""
    for key in list(settings.DEFAULTS):
        monkeypatch.delenv(key, raising=False)
    made = []

    def make(**config):
        made.append(LiveServer(create_app(dict(app_config, **config))).start())
        return made[-1]

    yield make
    for server in made:
        server.stop()


def refused(response, json_body=True):
    assert response.status_code == 400, response.text
    if json_body:
        error, = response.json()["errors"]
        assert error["code"] == "invalidHost" and EVIL in error["message"]
    else:
        assert response.headers["Content-Type"].startswith("text/plain")
        assert EVIL in response.text and "RUNWARE_ARCHIVE_ALLOWED_HOSTS" in response.text
    return True


# --- the Host check -------------------------------------------------------------------------


@pytest.mark.parametrize("host", [EVIL, f"{EVIL}:80", "localhost.evil.example",
                                  "127.0.0.1.nip.io", "localhost.", "0.0.0.0"])
def test_pages_and_the_api_refuse_another_host_name(live_server, host):
    headers = {"Host": host}
    page = requests.get(live_server.url + "/", headers=headers, timeout=5)
    assert page.status_code == 400 and page.headers["X-Frame-Options"] == "DENY"
    assert "invalidHost" in requests.get(live_server.url + "/api/tasks", headers=headers,
                                         timeout=5).text
    if host.startswith(EVIL):
        assert refused(page, json_body=False)
        assert refused(requests.get(live_server.url + "/api/tasks", headers=headers,
                                    timeout=5))


def test_a_task_posted_under_another_name_is_neither_stored_nor_sent(live_server):
    catalogue = live_server.app.extensions["catalogue"]
    task = new_task()
    assert refused(requests.post(live_server.url + "/api/tasks", json=task,
                                 headers={"Host": EVIL}, timeout=10))
    assert catalogue.list_tasks() == []
    # The same taskUUID is still new to the sandbox: nothing was sent.
    response = requests.post(live_server.url + "/api/tasks", json=task, timeout=10)
    assert response.status_code == 202, response.text


def test_the_webhook_refuses_another_host_name_and_logs_nothing(live_server, sender):
    catalogue = live_server.app.extensions["catalogue"]
    task = make_task(catalogue)
    assert refused(sender.post(task, result_for(task), headers={"Host": EVIL}))
    assert catalogue.deliveries() == [] and catalogue.get_task(task)["results"] == []
    assert sender.post(task, result_for(task)).status_code == 200


def test_the_sandbox_refuses_another_host_name(live_server):
    url, auth = live_server.url + settings.SANDBOX_PATH, {"Authorization": "Bearer any"}
    task = new_task()
    assert refused(requests.post(url, json=[dict(task, taskType="imageInference")],
                                 headers={**auth, "Host": EVIL}, timeout=5))
    # Not taken: the service sends the same taskUUID afterwards, no conflictTaskUUID.
    answer = requests.post(live_server.url + "/api/tasks", json=task, timeout=10)
    assert answer.status_code == 202, answer.text


def test_the_names_it_is_served_under_are_answered(live_server):
    port = live_server.server.server_port
    live_server.app.config.update(RUNWARE_ARCHIVE_PUBLIC_URL="https://archive.example/",
                                  RUNWARE_ARCHIVE_ALLOWED_HOSTS=" Photos.Example , other:8443")
    for host in ("localhost", f"localhost:{port}", f"127.0.0.1:{port}", "[::1]:8080",
                 "LOCALHOST", "archive.example", "archive.example:443", "photos.example",
                 "other:1"):
        for path in ("/", "/api/tasks"):
            response = requests.get(live_server.url + path, headers={"Host": host}, timeout=5)
            assert response.status_code == 200, (host, path, response.text)
    assert refused(requests.get(live_server.url + "/api/tasks", headers={"Host": EVIL},
                                timeout=5))


def test_the_flask_test_client_host_is_answered(client):
    assert client.get("/api/tasks").status_code == 200  # Host: localhost
    assert client.get("/api/tasks", headers={"Host": EVIL}).status_code == 400


def test_a_star_turns_the_check_off(live_server):
    def status():
        return requests.get(live_server.url + "/api/tasks", headers={"Host": EVIL},
                            timeout=5).status_code

    live_server.app.config["RUNWARE_ARCHIVE_ALLOWED_HOSTS"] = "photos.example"
    assert status() == 400
    live_server.app.config["RUNWARE_ARCHIVE_ALLOWED_HOSTS"] = "photos.example, *"
    assert status() == 200


def test_every_interface_is_no_name_and_a_bound_address_is():
    config = {"RUNWARE_ARCHIVE_PUBLIC_URL": None, "RUNWARE_ARCHIVE_ALLOWED_HOSTS": None}
    assert allowed_names(config, "http://127.0.0.1:5000") == LOOPBACK_NAMES
    assert allowed_names(config, "http://0.0.0.0:5000") == LOOPBACK_NAMES
    assert allowed_names(config, "http://[::]:5000") == LOOPBACK_NAMES
    assert allowed_names(config, "http://192.0.2.5:5000") == LOOPBACK_NAMES | {"192.0.2.5"}
    assert allowed_names(config, "http://[fd00::5]:80") == LOOPBACK_NAMES | {"[fd00::5]"}
    config["RUNWARE_ARCHIVE_ALLOWED_HOSTS"] = "fd00::7,bücher.example"
    assert allowed_names(config, "http://0.0.0.0:5000") == LOOPBACK_NAMES | {
        "[fd00::7]", "xn--bcher-kva.example"}


# --- the webhookURL -------------------------------------------------------------------------


@pytest.fixture
def runware(servers, provider):
    """A server with a key and the fake provider, answering any Host name, so that only
    the webhookURL's rule stands between a forged header and the URL sent."""
    def make(**config):
        return servers(RUNWARE_API_KEY="test-key", RUNWARE_API_URL=provider.url,
                       RUNWARE_ARCHIVE_ALLOWED_HOSTS="*", **config)
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


# --- ProxyFix -------------------------------------------------------------------------------


def remote_addr_of_a_delivery(server, headers):
    catalogue = server.app.extensions["catalogue"]
    task = make_task(catalogue)
    from tests.conftest import WebhookSender
    sender = WebhookSender(server.url, server.app.extensions["webhook_secret"])
    assert sender.post(task, result_for(task), headers=headers).status_code == 200
    return catalogue.deliveries(task_uuid=task)[0]["remote_addr"]


def test_x_forwarded_for_counts_only_with_proxy_fix(servers):
    forwarded = {"X-Forwarded-For": "203.0.113.9"}
    assert remote_addr_of_a_delivery(servers(), forwarded) == "127.0.0.1"
    assert remote_addr_of_a_delivery(
        servers(RUNWARE_ARCHIVE_PROXY_FIX="x_for=1"), forwarded) == "203.0.113.9"
    assert remote_addr_of_a_delivery(
        servers(RUNWARE_ARCHIVE_PROXY_FIX="1"), forwarded) == "203.0.113.9"


def test_the_host_check_sees_a_forwarded_host_only_when_x_host_is_trusted(servers):
    def status(server, headers):
        return requests.get(server.url + "/api/tasks", headers=headers, timeout=5).status_code

    plain = servers(RUNWARE_ARCHIVE_PUBLIC_URL="https://archive.example")
    assert status(plain, {"X-Forwarded-Host": EVIL}) == 200  # ignored: the client's words
    assert status(plain, {"Host": EVIL, "X-Forwarded-Host": "archive.example"}) == 400
    proxied = servers(RUNWARE_ARCHIVE_PUBLIC_URL="https://archive.example",
                      RUNWARE_ARCHIVE_PROXY_FIX="x_for=1,x_proto=1,x_host=1")
    assert status(proxied, {"X-Forwarded-Host": EVIL}) == 400
    assert status(proxied, {"Host": EVIL, "X-Forwarded-Host": "archive.example"}) == 200


@pytest.mark.parametrize("value,counts", [
    (None, None), ("", None), ("0", None), ("off", None), ("x_for=0", None),
    ("1", {"x_for": 1, "x_proto": 1}), ("2", {"x_for": 2, "x_proto": 2}),
    ("x_for=1, x_proto=1, x_host=1", {"x_for": 1, "x_proto": 1, "x_host": 1}),
])
def test_proxy_fix_counts(value, counts):
    assert proxy_fix_counts(value) == counts


@pytest.mark.parametrize("value", ["yes please", "x_forwarded=1", "x_for", "x_for=-1"])
def test_a_bad_proxy_fix_setting_stops_the_start(app_config, value):
    with pytest.raises(SystemExit, match="RUNWARE_ARCHIVE_PROXY_FIX"):
        create_app(dict(app_config, RUNWARE_ARCHIVE_PROXY_FIX=value))
