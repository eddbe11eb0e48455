"""CSRF on every change, the optional login, the security headers, the serve warning."""

import threading

import pytest

from receiver import create_app
from receiver.views.auth import SECURITY_HEADERS, safe_next
from receiver.cli import exposure_warning
from receiver.provider.tokens import make_token
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

    locked.config["RUNWARE_ARCHIVE_ALLOWED_HOSTS"] = "archive.example"  # its own name
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


def log_in(client, password="correct horse"):
    answer = client.post("/login", data={"password": password,
                                         "csrf_token": csrf(client, "/login")})
    assert answer.status_code == 302, answer.status_code
    return answer


def test_a_changed_password_ends_old_sessions(locked):
    client = locked.test_client()
    log_in(client)
    assert client.get("/").status_code == 200
    locked.config["RUNWARE_ARCHIVE_UI_PASSWORD"] = "battery staple"
    assert client.get("/").status_code == 302
    # Ended, not merely refused while the password differs: its row is gone, so going back
    # to the old password does not bring the session back.
    locked.config["RUNWARE_ARCHIVE_UI_PASSWORD"] = "correct horse"
    assert client.get("/").status_code == 302
    assert client.get("/api/tasks").status_code == 401


def test_a_new_password_ends_sessions_in_every_worker(locked, app_config):
    client = locked.test_client()
    log_in(client)
    restarted = create_app(dict(app_config, RUNWARE_ARCHIVE_UI_PASSWORD="battery staple"))
    copy = restarted.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    assert copy.get("/").status_code == 302
    assert client.get("/").status_code == 302  # the old worker sees the row gone too


def test_logout_ends_the_session_wherever_its_cookie_was_copied(locked, app_config):
    client = locked.test_client()
    log_in(client)
    cookie = client.get_cookie("session").value
    other_worker = create_app(dict(app_config, RUNWARE_ARCHIVE_UI_PASSWORD="correct horse"))
    thief = other_worker.test_client()
    thief.set_cookie("session", cookie)
    assert thief.get("/").status_code == 200  # a copy works while the session lives
    assert client.post("/logout", data={"csrf_token": csrf(client, "/")}).status_code == 302
    thief.set_cookie("session", cookie)  # the very cookie, signature and all
    assert thief.get("/").status_code == 302
    assert thief.get("/api/tasks").status_code == 401
    replay = locked.test_client()
    replay.set_cookie("session", cookie)
    assert replay.get("/").status_code == 302


def test_the_catalogue_holds_no_session_id(locked, catalogue):
    client = locked.test_client()
    log_in(client)
    serializer = locked.session_interface.get_signing_serializer(locked)
    state = serializer.loads(client.get_cookie("session").value)
    assert set(state) <= {"sid", "csrf_token"}  # nothing derived from the password
    rows = catalogue.conn.execute("SELECT * FROM sessions").fetchall()
    assert len(rows) == 1 and state["sid"] not in repr(rows)


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
    from receiver.storage import get_store
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
    for guess in ("correct horse", "guess"):  # right or wrong, the answer is the same
        refused = client.get("/api/tasks", headers={"Authorization": f"Bearer {guess}"})
        assert refused.status_code == 429
        assert 0 < int(refused.headers["Retry-After"]) <= 900
        assert refused.get_json()["errors"][0]["parameter"] == "login"
    form = locked.test_client()  # the form is locked out for the address too
    refused = form.post("/login", data={"password": "correct horse",
                                        "csrf_token": csrf(form, "/login")})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0


def guess_five_times(app):
    client = app.test_client()
    token = csrf(client, "/login")
    for _ in range(5):
        assert client.post("/login", data={"password": "guess", "csrf_token": token}
                           ).status_code == 401


def test_the_failed_login_count_is_shared_by_workers_and_kept_across_restarts(
        locked, app_config):
    config = dict(app_config, RUNWARE_ARCHIVE_UI_PASSWORD="correct horse")
    first, second = locked, create_app(config)  # two gunicorn workers on one data folder
    client = first.test_client()
    token = csrf(client, "/login")
    for _ in range(3):
        client.post("/login", data={"password": "guess", "csrf_token": token})
    other = second.test_client()
    other_token = csrf(other, "/login")
    for _ in range(2):
        assert other.post("/login", data={"password": "guess", "csrf_token": other_token}
                          ).status_code == 401
    assert other.post("/login", data={"password": "correct horse", "csrf_token": other_token}
                      ).status_code == 429
    restarted = create_app(config).test_client()
    refused = restarted.get("/api/tasks", headers={"Authorization": "Bearer correct horse"})
    assert refused.status_code == 429 and "Retry-After" in refused.headers


def test_guesses_in_parallel_cannot_outrun_the_count(locked):
    statuses, start = [], threading.Barrier(12)

    def guess():
        client = locked.test_client()
        start.wait()
        statuses.append(client.get("/api/tasks", headers={"Authorization": "Bearer guess"}
                                   ).status_code)

    threads = [threading.Thread(target=guess) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(statuses) == [401] * 5 + [429] * 7


def test_the_lockout_ends_with_its_window(catalogue):
    from archive.sessions import LoginLimit
    now = [1000.0]
    limiter = LoginLimit(catalogue, limit=2, window=60, clock=lambda: now[0])
    assert limiter.attempt("a", False) == 0 and limiter.attempt("a", False) == 0
    assert limiter.wait("a") == 60 and limiter.wait("b") == 0
    assert limiter.attempt("a", True) == 60  # refused unjudged, and not counted
    now[0] += 30
    assert limiter.attempt("a", False) == 30  # nor is a wrong one while locked out
    now[0] += 31
    assert limiter.wait("a") == 0
    assert limiter.attempt("a", False) == 0
    assert limiter.attempt("a", True, forget=True) == 0
    assert limiter.wait("a") == 0
    assert catalogue.conn.execute("SELECT count(*) FROM login_failures").fetchone()[0] == 0


def test_the_failure_rows_stay_bounded(catalogue):
    from archive.sessions import LoginLimit
    now = [1000.0]
    limiter = LoginLimit(catalogue, limit=5, window=60, clock=lambda: now[0], kept=10)
    for n in range(30):  # a spray of addresses
        limiter.attempt(f"192.0.2.{n}", False)
    assert catalogue.conn.execute("SELECT count(*) FROM login_failures").fetchone()[0] == 10
    now[0] += 61
    limiter.attempt("198.51.100.1", False)  # anything past the window goes
    assert catalogue.conn.execute("SELECT count(*) FROM login_failures").fetchone()[0] == 1


def test_sessions_expire_and_dead_rows_go(catalogue):
    from archive.sessions import Sessions
    now = [1000.0]
    sessions = Sessions(catalogue, lifetime=100, clock=lambda: now[0])
    alive, dead = sessions.start("epoch"), sessions.start("epoch")
    assert sessions.check(alive, "epoch") and not sessions.check(alive, "another")
    assert not sessions.check(alive, "epoch")  # a wrong epoch ended it
    now[0] += 101
    assert not sessions.check(dead, "epoch") and sessions.count() == 0
    assert not sessions.check(None, "epoch") and not sessions.check("", "epoch")


def test_the_favicon_answers_without_a_login(locked):
    client = locked.test_client()
    for path in ("/favicon.ico", "/static/favicon.svg"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.data[:4] == b"\x00\x00\x01\x00" if path.endswith(".ico") else \
            response.data.startswith(b"<svg")
    assert client.get("/favicon.ico").headers["Content-Type"] == "image/vnd.microsoft.icon"
    page = locked.test_client().get("/login").get_data(as_text=True)
    assert 'rel="icon" href="/static/favicon.svg"' in page and 'href="/favicon.ico"' in page
