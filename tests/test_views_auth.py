"""CSRF on every change, the optional login, the security headers, the serve warning."""

import pytest

from receiver.auth import SECURITY_HEADERS, safe_next
from receiver.cli import exposure_warning
from receiver.tokens import make_token
from tests.history_helpers import deliver, make_task
from tests.views_helpers import TOKEN, app_config, catalogue, csrf, provider, text  # noqa: F401

CSP = ("default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self';"
       " frame-ancestors 'none'; form-action 'self'")


@pytest.fixture
def task(catalogue):
    uuid = make_task(catalogue, "a harbor", seed=1)
    deliver(catalogue, uuid, 1)
    return uuid


def changes(catalogue):
    """Everything a refused POST must leave alone."""
    conn = catalogue.conn
    return conn.execute("SELECT (SELECT count(*) FROM tasks), (SELECT total(starred) FROM"
                        " results)").fetchone()


@pytest.mark.parametrize("path", ["/new", "/tasks/{task}/rerun", "/tasks/{task}/delete",
                                  "/results/{image}/star", "/logout"])
@pytest.mark.parametrize("token,status", [(None, 400), ("wrong", 403)])
def test_posts_need_the_sessions_csrf_token(client, catalogue, provider, task, path, token,
                                            status):
    image = catalogue.get_task(task)["results"][0]["image_uuid"]
    csrf(client)  # the session has a token; the form below does not send it
    before = changes(catalogue)
    data = {"mode": "exact", "confirm": "yes", "starred": "1", "positivePrompt": "a harbor"}
    if token:
        data["csrf_token"] = token
    response = client.post(path.format(task=task, image=image), data=data)
    assert response.status_code == status
    assert changes(catalogue) == before and provider.tasks() == []


def test_a_token_from_another_session_is_refused(app, catalogue, provider, task):
    other = app.test_client()
    stolen = csrf(other)
    client = app.test_client()
    csrf(client)
    response = client.post(f"/tasks/{task}/rerun", data={"mode": "exact", "csrf_token": stolen})
    assert response.status_code == 403 and provider.tasks() == []


def test_the_api_takes_json_without_a_token_but_not_a_form(client, catalogue, provider, task):
    form = client.post("/api/tasks", data={"positivePrompt": "a harbor"})
    assert form.status_code == 400 and form.get_json()["errors"][0]["parameter"] == "csrf_token"
    rerun = client.post(f"/api/tasks/{task}/rerun", data={"mode": "exact"})
    assert rerun.status_code == 400
    plain = client.post("/api/tasks", data='{"positivePrompt": "a harbor"}',
                        content_type="text/plain")
    assert plain.status_code == 400
    assert provider.tasks() == []
    assert client.post("/api/tasks", json={"positivePrompt": "a harbor"}).status_code == 202


def test_only_post_changes_anything(client, task):
    assert client.get(f"/tasks/{task}/rerun").status_code == 405
    assert client.get("/logout").status_code == 405
    assert "Delete this task?" in text(client.get(f"/tasks/{task}/delete"))


@pytest.mark.parametrize("path", ["/", "/new", "/deliveries", "/tasks/{task}", "/costs",
                                  "/api/tasks", "/no-such-page"])
def test_security_headers_on_every_response(client, task, path):
    response = client.get(path.format(task=task))
    assert response.headers["Content-Security-Policy"].startswith(CSP)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_pages_have_no_inline_script_or_style(client, task):
    for path in ("/", "/new", f"/tasks/{task}", "/deliveries", "/login"):
        page = text(client.get(path))
        assert "<script>" not in page and "<style" not in page and " style=" not in page
        assert " onclick=" not in page and "javascript:" not in page


def test_safe_next_refuses_other_sites():
    for bad in ("https://evil.example/", "//evil.example/", "/\\evil", "", None, "evil"):
        assert safe_next(bad) == "/"
    assert safe_next("/tasks/x?y=1") == "/tasks/x?y=1"


@pytest.fixture
def locked(app):
    app.config["RUNWARE_ARCHIVE_UI_PASSWORD"] = "correct horse"
    return app


@pytest.mark.parametrize("path", ["/", "/new", "/deliveries", "/costs", "/tasks/{task}",
                                  "/files/" + "a" * 64 + ".jpg", "/thumbs/" + "a" * 64 + ".webp",
                                  "/download/{image}"])
def test_with_a_password_pages_and_files_need_a_login(locked, catalogue, task, path):
    image = catalogue.get_task(task)["results"][0]["image_uuid"]
    response = locked.test_client().get(path.format(task=task, image=image))
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("method,path", [("get", "/api/tasks"), ("get", "/api/tasks/{task}"),
                                         ("post", "/api/tasks"), ("get", "/api/costs"),
                                         ("post", "/api/tasks/{task}/rerun"), ("get", "/metrics")])
def test_with_a_password_the_api_answers_401(locked, task, provider, method, path):
    response = getattr(locked.test_client(), method)(path.format(task=task),
                                                     json={"positivePrompt": "a harbor"})
    assert response.status_code == 401
    assert provider.tasks() == []


def test_with_a_password_the_webhook_still_takes_its_token(locked, task):
    secret = locked.extensions["webhook_secret"]
    url = f"/webhooks/runware/{task}?token={make_token(task, secret=secret)}"
    body = {"data": [{"taskType": "imageInference", "taskUUID": task, "seed": 2, "cost": 0.1,
                      "imageUUID": "0b0a8b7e-4a51-4d0e-9a8f-2d1e0c7b6a55",
                      "imageURL": "https://im.runware.ai/image/ws/2/ii/x.jpg"}]}
    assert locked.test_client().post(url, json=body).status_code == 200
    assert locked.test_client().get("/healthz").status_code in (200, 503)


def test_the_session_cookie_is_secure_over_https_only_unless_configured(locked):
    """A login made over https must never ride back over http; over plain http the
    cookie cannot be Secure (the browser would drop it) unless a TLS proxy is declared."""
    def login_cookie(client, base_url):
        page = client.get("/login", base_url=base_url)
        token = TOKEN.search(text(page))[1]
        answer = client.post("/login", base_url=base_url,
                             data={"password": "correct horse", "csrf_token": token})
        assert answer.status_code == 302
        return answer.headers["Set-Cookie"]

    assert "; Secure" in login_cookie(locked.test_client(), "https://archive.example")
    assert "; Secure" not in login_cookie(locked.test_client(), "http://archive.example")
    locked.config["SESSION_COOKIE_SECURE"] = True  # behind a proxy that ends TLS
    assert "; Secure" in login_cookie(locked.test_client(), "http://archive.example")


def test_login_logout_and_the_session_cookie(locked, task):
    client = locked.test_client()
    page = client.get("/login?next=/tasks/" + task)
    assert page.status_code == 200 and 'type="password"' in text(page)
    token = csrf(client, "/login")
    wrong = client.post("/login", data={"password": "wrong", "csrf_token": token})
    assert wrong.status_code == 401 and "not the password" in text(wrong)
    assert client.get("/").status_code == 302
    no_token = client.post("/login", data={"password": "correct horse"})
    assert no_token.status_code == 400
    right = client.post("/login", data={"password": "correct horse", "csrf_token": token,
                                        "next": f"/tasks/{task}"})
    assert right.status_code == 302 and right.headers["Location"] == f"/tasks/{task}"
    cookie = right.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert client.get("/").status_code == 200
    assert client.get("/api/tasks").status_code == 200
    assert "correct horse" not in text(client.get("/"))
    fresh = csrf(client, "/")
    assert fresh != token  # a new session at login: a token seen before it is worthless
    assert client.post("/logout", data={"csrf_token": fresh}).status_code == 302
    assert client.get("/").status_code == 302


def test_a_changed_password_ends_old_sessions(locked):
    client = locked.test_client()
    client.post("/login", data={"password": "correct horse", "csrf_token": csrf(client, "/login")})
    assert client.get("/").status_code == 200
    locked.config["RUNWARE_ARCHIVE_UI_PASSWORD"] = "battery staple"
    assert client.get("/").status_code == 302


def test_scripts_may_send_the_password_as_a_bearer_token(locked, provider):
    client = locked.test_client()
    good = {"Authorization": "Bearer correct horse"}
    assert client.get("/api/tasks", headers=good).status_code == 200
    assert client.post("/api/tasks", json={"positivePrompt": "a harbor"},
                       headers=good).status_code == 202
    assert client.get("/api/tasks", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/", headers=good).status_code == 302  # pages need the login


def test_serve_warns_plainly_without_a_password():
    assert exposure_warning("127.0.0.1", {}) is None
    warning = exposure_warning("0.0.0.0", {})
    assert "RUNWARE_ARCHIVE_UI_PASSWORD is not set" in warning
    assert "anyone who can reach" in warning and "spend money" in warning
    assert "not set" not in exposure_warning("0.0.0.0", {"RUNWARE_ARCHIVE_UI_PASSWORD": "x"})


def test_the_headers_are_the_documented_ones():
    assert SECURITY_HEADERS["Content-Security-Policy"].startswith(CSP)


def test_behind_a_password_files_are_cached_privately(locked, catalogue, task):
    from receiver.archiving import get_store
    from tests.history_helpers import archive, picture
    image = catalogue.get_task(task)["results"][0]["image_uuid"]
    sha = archive(catalogue, get_store(locked), image, picture(1))
    client = locked.test_client()
    client.post("/login", data={"password": "correct horse", "csrf_token": csrf(client, "/login")})
    response = client.get(f"/files/{sha}.jpg")
    assert response.status_code == 200
    assert "private" in response.headers["Cache-Control"]
    assert "public" not in response.headers["Cache-Control"]


def test_wrong_passwords_lock_out_their_address_not_others(locked):
    client = locked.test_client()
    token = csrf(client, "/login")
    for _ in range(5):
        assert client.post("/login", data={"password": "guess", "csrf_token": token}
                           ).status_code == 401
    refused = client.post("/login", data={"password": "correct horse", "csrf_token": token})
    assert refused.status_code == 429 and "Too many wrong passwords" in text(refused)
    assert int(refused.headers["Retry-After"]) > 0
    other = locked.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    other_token = csrf(other, "/login")
    assert other.post("/login", data={"password": "correct horse",
                                      "csrf_token": other_token}).status_code == 302


def test_wrong_bearer_passwords_lock_out_too(locked):
    client = locked.test_client()
    for _ in range(5):
        assert client.get("/api/tasks", headers={"Authorization": "Bearer guess"}
                          ).status_code == 401
    right = client.get("/api/tasks", headers={"Authorization": "Bearer correct horse"})
    assert right.status_code == 401


def test_the_lockout_ends_with_its_window():
    from receiver.auth import FailedLogins
    now = [1000.0]
    limiter = FailedLogins(limit=2, window=60, clock=lambda: now[0])
    limiter.failed("a")
    limiter.failed("a")
    assert limiter.wait("a") == 60 and limiter.wait("b") == 0
    now[0] += 61
    assert limiter.wait("a") == 0
    limiter.failed("a")
    limiter.succeeded("a")
    assert limiter.wait("a") == 0
