"""Bad input answers 4xx, never 5xx: every GET route walked with hostile query values and
path segments, one regression test per URL that used to answer 500, the JSON net under
``/api/``, and the databases kept private to their owner (0600)."""

import logging
import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from receiver import config as app_settings
from receiver import create_app
from receiver.storage import get_store
from tests.history_helpers import archive, deliver, make_task, picture

RECEIVER = Path(__file__).resolve().parents[1] / "receiver"
# The query parameters each GET route reads: request.args.get(...) in its view, and the
# names behind Filters.from_args (gallery), parse_query (costs) and read_form (estimate).
QUERY = {
    "gallery.index": ("q", "since", "until", "model", "size", "status", "provider",
                      "starred", "cursor", "before", "last", "sort", "density"),
    "deliveries.index": ("verdict", "reason", "task", "before"),
    "api.index": ("limit", "cursor"),
    "api.cost_summary": ("from", "to", "group", "format"),
    "costs.index": ("from", "to"),
    "compose.new": ("from",),
    "api.estimate": ("width", "height", "steps", "numberResults"),
    "auth.login": ("next",),
}
NOT_GET = ("token", "imageUUID")  # read by PUT /uploads only
HUGE = "123456789012345678901234567890"
EDGES = ("", "0", "-1", "1", "²", "٣", "1²", HUGE, "9223372036854775807",
         "9223372036854775808", "-9223372036854775809", "0001-01-01", "9999-12-31",
         "0001-01-02", "9999-12-30", "2024-02-30", "2024-2-3", "1.2", f"{HUGE}.1",
         "1e400", "nan", "..", "../../etc/passwd", "\x00", "%", "1024x1024", "²²x²²")
QUERY_VALUES = st.one_of(
    st.sampled_from(EDGES), st.text(max_size=30), st.dates().map(str),
    st.integers(min_value=-10**30, max_value=10**30).map(str),
    st.from_regex(r"-?[0-9²٣]{1,32}", fullmatch=True))
PATH_EDGES = (HUGE, "..", "0", "-1", "²", "٣", "%2e%2e", "a" * 300)
PATH_VALUES = st.one_of(
    st.sampled_from(PATH_EDGES),
    st.text(min_size=1, max_size=40), st.from_regex(r"[0-9]{1,40}", fullmatch=True))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """A sandbox-mode app (no fetcher) with a few tasks, results, one archived image and
    the delivery log they made; one for the module, so hypothesis can share it."""
    with pytest.MonkeyPatch.context() as patch:
        for key in app_settings.DEFAULTS:
            patch.delenv(key, raising=False)
        app = create_app({"TESTING": True, "RUNWARE_ARCHIVE_FETCHER": "off",
                          "RUNWARE_ARCHIVE_DIR": str(tmp_path_factory.mktemp("data"))})
        catalogue = app.extensions["catalogue"]
        for n, created in enumerate(("2024-01-01T10:00:00.000000Z",
                                     "2025-06-30T23:59:59.999999Z", None)):
            task = make_task(catalogue, f"a lighthouse {n}", created_at=created)
            images = deliver(catalogue, task, 10 + n, 20 + n)
        archive(catalogue, get_store(app), images[0], picture(seed=3))
        yield app


@pytest.fixture(scope="module")
def client(app):
    return app.test_client()


def get_rules(app):
    """Every GET rule but the static files and the sandbox (a provider, not the app)."""
    return sorted((rule for rule in app.url_map.iter_rules()
                   if "GET" in rule.methods and rule.endpoint != "static"
                   and not rule.rule.startswith("/sandbox")), key=lambda rule: rule.rule)


def path_of(rule, values):
    """``rule`` with each ``<converter:name>`` replaced by its value, percent-encoded."""
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: quote(values[m[1]], safe=""),
                  rule.rule)


def assert_not_5xx(client, path, query):
    response = client.get(path, query_string=query)
    assert response.status_code < 500, (path, query, response.get_data(as_text=True)[:500])
    if path.startswith("/api/") and response.status_code >= 400:
        assert response.is_json, (path, query)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_no_get_route_answers_5xx_to_hostile_values(app, client, data):
    rule = data.draw(st.sampled_from(get_rules(app)), label="rule")
    # A real segment is as interesting as a hostile one: it gets past the look-up.
    path = path_of(rule, {name: data.draw(PATH_VALUES, label=name)
                          for name in sorted(rule.arguments)})
    names = QUERY.get(rule.endpoint, ())
    query = {name: data.draw(QUERY_VALUES, label=name)
             for name in data.draw(st.lists(st.sampled_from(names), unique=True)
                                   if names else st.just([]), label="names")}
    assert_not_5xx(client, path, query)


def test_every_edge_value_in_every_parameter_alone(app, client):
    """The sweep hypothesis may not happen upon: each edge value in each parameter."""
    for rule in get_rules(app):
        for value in PATH_EDGES if rule.arguments else ():
            assert_not_5xx(client, path_of(rule, dict.fromkeys(rule.arguments, value)), {})
        path = path_of(rule, {name: "0" for name in rule.arguments})
        for name in QUERY.get(rule.endpoint, ()):
            for value in EDGES:
                assert_not_5xx(client, path, {name: value})


def test_the_catalogue_of_query_parameters_names_every_one_the_views_read():
    """A view that starts reading a new parameter joins the walk above."""
    read = {m[1] for source in RECEIVER.glob("*.py")
            for m in re.finditer(r"request\.args\.get\(\s*\"([^\"]+)\"", source.read_text())}
    assert read <= {name for names in QUERY.values() for name in names} | set(NOT_GET)


# -- one regression test per URL that answered 500 ------------------------------------

def api_errors(response, status=400):
    assert response.status_code == status and response.is_json
    errors = response.get_json()["errors"]
    assert errors and all(e["parameter"] and e["message"] for e in errors)
    return {e["parameter"]: e["message"] for e in errors}


def error_page(response, status):
    text = response.get_data(as_text=True)
    assert response.status_code == status and response.mimetype == "text/html"
    assert 'class="error-page"' in text
    return text


def test_a_delivery_id_past_sqlite_integers_is_not_found(client):
    page = error_page(client.get(f"/deliveries/{HUGE}"), 404)
    assert f"There is no delivery {HUGE}." in page


@pytest.mark.parametrize("before", ["²", HUGE, "-3", "abc"])
def test_a_bad_before_on_the_delivery_log_is_refused(client, before):
    page = error_page(client.get("/deliveries", query_string={"before": before}), 400)
    assert "before must be a whole number" in page


def test_a_tasks_cursor_past_sqlite_integers_is_refused(client):
    errors = api_errors(client.get(f"/api/tasks?cursor={HUGE[:23]}"))
    assert errors == {"cursor": "must be a whole number from 1 to 9223372036854775807"}
    assert set(api_errors(client.get("/api/tasks?limit=²&cursor=²"))) == {"limit", "cursor"}


@pytest.mark.parametrize("query", ["since=0001-01-01", "until=9999-12-31",
                                   "since=0001-01-01&until=9999-12-31"])
def test_the_gallery_clamps_dates_at_the_ends_of_the_calendar(client, query):
    """A filter from the first day there is, or to the last, filters nothing out."""
    everything = client.get("/").get_data(as_text=True).count('data-card ')
    page = client.get(f"/?{query}")
    assert page.status_code == 200
    assert page.get_data(as_text=True).count('data-card ') == everything > 0
    assert "Ignored" not in page.get_data(as_text=True)


def test_the_gallery_reads_years_before_1000_as_four_digits(client):
    """The bounds are compared as text: '5-01-01' would sort after '2024-…'."""
    everything = client.get("/").get_data(as_text=True).count('data-card ')
    assert client.get("/?since=0005-01-01").get_data(as_text=True).count(
        'data-card ') == everything


@pytest.mark.parametrize("query, parameter", [("to=9999-12-31", "to"),
                                              ("from=0001-01-01", "from"),
                                              ("from=٢٠٢٤-٠١-٠١", "from")])
def test_cost_dates_whose_range_leaves_the_calendar_are_refused(client, query, parameter):
    errors = api_errors(client.get(f"/api/costs?{query}"))
    assert errors == {parameter: f"{parameter} must be a date as YYYY-MM-DD"
                                 " from 0001-01-02 to 9999-12-30"}
    assert client.get(f"/costs?{query}").status_code == 400
    assert client.get("/api/costs?from=0001-01-02&to=9999-12-30").status_code == 200


def test_a_huge_steps_for_the_estimate_is_refused(app):
    with app.test_client() as client:
        app.testing = False  # the 500 answered, not raised
        try:
            response = client.get(f"/api/estimate?steps={HUGE}")
        finally:
            app.testing = True
    assert response.status_code == 400


# -- the net ---------------------------------------------------------------------------

@pytest.fixture
def failing_app(tmp_path, monkeypatch):
    """An app that lets exceptions reach its error handlers, with a route that fails
    under ``/api/`` and one outside."""
    for key in app_settings.DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    app = create_app({"TESTING": True, "PROPAGATE_EXCEPTIONS": False,
                      "RUNWARE_ARCHIVE_DIR": str(tmp_path), "RUNWARE_ARCHIVE_FETCHER": "off"})

    def boom():
        raise RuntimeError("nobody foresaw this")

    app.add_url_rule("/api/boom", "api_boom", boom)
    app.add_url_rule("/boom", "boom", boom)
    return app


def test_an_unexpected_error_under_api_answers_json(failing_app):
    client = failing_app.test_client()
    errors = api_errors(client.get("/api/boom"), 500)
    assert "nobody foresaw" not in errors["request"]  # the log has it, not the client
    error_page(client.get("/boom"), 500)


# -- the databases are private ---------------------------------------------------------

def modes(folder, name):
    return {suffix: os.stat(folder / f"{name}{suffix}").st_mode & 0o777
            for suffix in ("", "-wal", "-shm")}


def started(folder, monkeypatch):
    for key in app_settings.DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    app = create_app({"TESTING": True, "RUNWARE_ARCHIVE_DIR": str(folder),
                      "RUNWARE_ARCHIVE_FETCHER": "off"})
    assert app.config["PROVIDER"] == "sandbox"
    make_task(app.extensions["catalogue"])  # a write: the WAL is in use
    assert app.test_client().get("/healthz").status_code == 200
    return app


def test_the_catalogue_and_the_sandbox_database_are_created_private(tmp_path, monkeypatch):
    previous = os.umask(0o022)  # the usual umask, which alone would leave them 0644
    try:
        started(tmp_path, monkeypatch)
    finally:
        os.umask(previous)
    private = {"": 0o600, "-wal": 0o600, "-shm": 0o600}
    assert modes(tmp_path, "catalogue.db") == private
    assert modes(tmp_path, "sandbox.db") == private


def test_databases_open_to_others_are_tightened_and_it_is_said(tmp_path, monkeypatch,
                                                               caplog):
    started(tmp_path, monkeypatch)
    for name in ("catalogue.db", "sandbox.db"):
        os.chmod(tmp_path / name, 0o644)
        os.chmod(tmp_path / f"{name}-wal", 0o664)
    with caplog.at_level(logging.WARNING, logger="archive.catalogue"):
        started(tmp_path, monkeypatch)
    for name in ("catalogue.db", "sandbox.db"):
        assert modes(tmp_path, name)[""] == 0o600 and modes(tmp_path, name)["-wal"] == 0o600
        assert f"{name} was open to others (644); now 600" in caplog.text


@pytest.mark.parametrize("method, path, status", [
    ("get", "/api/no-such-route", 404), ("delete", "/api/tasks", 405),
    ("put", "/api/estimate", 405)])
def test_flasks_own_errors_under_api_are_json(app, method, path, status):
    response = getattr(app.test_client(), method)(path, json={})  # JSON: no CSRF token
    assert response.status_code == status
    assert response.is_json and response.get_json()["errors"][0]["message"]
    if status == 405:
        assert "GET" in response.headers["Allow"]
