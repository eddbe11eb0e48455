"""The gallery's search box, label filter and saved searches over HTTP (Flask's client on a
real catalogue file): what the page offers, what it finds, and the CSRF-checked forms."""

import re
from html import unescape

from tests.history_helpers import deliver, make_task
from tests.views_helpers import app_config, catalogue, csrf, provider, text  # noqa: F401


def cards(response):
    return re.findall(r'data-card href="/tasks/([0-9a-f-]{36})', text(response))


def test_the_label_select_lists_the_labels_in_use_and_filters(client, catalogue):
    a = make_task(catalogue, "harbor", label="client-a")
    b = make_task(catalogue, "street", label="client-b")
    deliver(catalogue, a, 1)
    deliver(catalogue, b, 2)
    page = text(client.get("/"))
    select = re.search(r'<select name="label">(.*?)</select>', page, re.S)[1]
    assert re.findall(r"<option[^>]*>([^<]*)</option>", select) == ["any", "client-a", "client-b"]
    assert cards(client.get("/?label=client-b")) == [b]
    assert "<option selected>client-b</option>" in text(client.get("/?label=client-b"))


def test_search_by_seed_negative_prompt_and_exclusion(client, catalogue):
    a = make_task(catalogue, "harbor in fog", negativePrompt="blurry")
    b = make_task(catalogue, "harbor in rain")
    deliver(catalogue, a, 31337)
    deliver(catalogue, b, 4)
    assert cards(client.get("/?q=31337")) == [a]
    assert cards(client.get("/?q=blurry")) == [a]
    assert cards(client.get("/?q=harbor+-fog")) == [b]
    assert cards(client.get("/?q=fog+OR+rain")) == [b, a]
    assert "Searching for harbor… and not fog…" in unescape(text(client.get("/?q=harbor+-fog")))


def test_bad_syntax_is_a_notice_never_an_error(client, catalogue):
    deliver(catalogue, make_task(catalogue, "a harbor"), 1)
    for q in ('"harbor', "OR", "harbor OR", "-", "seed:x", '""', "label:", "(((", "*" * 400):
        response = client.get("/", query_string={"q": q})
        assert response.status_code == 200, q
    response = client.get("/", query_string={"q": '"harbor'})
    assert len(cards(response)) == 1 and "closing quote was missing" in text(response)
    assert "OR needs a term on each side" in text(client.get("/", query_string={"q": "OR harbor"}))


def test_the_placeholder_and_help_say_what_works(client):
    page = unescape(text(client.get("/")))
    assert 'placeholder=\'Search prompt, negative prompt, label or seed: -word, OR, "phrase"\'' in page
    assert "How search works" in page and "seed:123456" in page


def test_a_search_is_saved_listed_opened_and_deleted(client, catalogue):
    a = make_task(catalogue, "harbor at dusk", label="client-a")
    deliver(catalogue, a, 1)
    deliver(catalogue, make_task(catalogue, "harbor at noon"), 2)
    token = csrf(client, "/?q=harbor&label=client-a")
    response = client.post("/searches", data={"csrf_token": token, "name": " dusk  work ",
                                              "q": "harbor", "label": "client-a"})
    assert response.status_code == 303
    assert response.headers["Location"] == "/?q=harbor&label=client-a"
    page = text(client.get("/"))
    link = re.search(r'<a href="(/\?[^"]+)">dusk work</a>', page)
    assert link, page
    assert cards(client.get(unescape(link[1]))) == [a]
    assert 'aria-current="true">dusk work' in text(client.get("/?label=client-a&q=harbor"))
    saved_id = re.search(r'action="/searches/(\d+)/delete"', page)[1]
    response = client.post(f"/searches/{saved_id}/delete", data={"csrf_token": token,
                                                                 "q": "harbor"})
    assert response.status_code == 303 and response.headers["Location"] == "/?q=harbor"
    page = text(client.get("/"))
    assert "Deleted the saved search “dusk work”" in page and ">dusk work</a>" not in page
    assert client.post(f"/searches/{saved_id}/delete",
                       data={"csrf_token": token}).status_code == 404


def test_saving_under_a_taken_name_replaces_it(client, catalogue):
    token = csrf(client)
    for q in ("fog", "rain"):
        client.post("/searches", data={"csrf_token": token, "name": "weather", "q": q})
    assert catalogue.conn.execute("SELECT name, query FROM saved_searches").fetchall() == \
        [("weather", "q=rain")]


def test_saving_needs_a_token_a_name_and_a_filter(client, catalogue):
    assert client.post("/searches", data={"name": "x", "q": "fog"}).status_code == 400
    token = csrf(client)
    client.post("/searches", data={"csrf_token": token, "name": "", "q": "fog"})
    response = client.post("/searches", data={"csrf_token": token, "name": "all"},
                           follow_redirects=True)
    assert "Not saved: there is nothing to save" in text(response)
    response = client.post("/searches", data={"csrf_token": token, "name": "n" * 81, "q": "a"},
                           follow_redirects=True)
    assert "Not saved: a saved search needs a name of 1 to 80 characters" in text(response)
    assert catalogue.conn.execute("SELECT count(*) FROM saved_searches").fetchone()[0] == 0
    assert client.post("/searches/99999999999999999999/delete",
                       data={"csrf_token": token}).status_code == 404


def test_a_saved_search_keeps_its_sort_order(client, catalogue):
    deliver(catalogue, make_task(catalogue, "harbor", label="client-a"), 1)
    page = text(client.get("/?label=client-a&sort=costliest"))
    form = re.search(r'<form class="save-search"(.*?)</form>', page, re.S)[1]
    assert '<input type="hidden" name="sort" value="costliest">' in form
    token = csrf(client)
    response = client.post("/searches", data={"csrf_token": token, "name": "dear first",
                                              "label": "client-a", "sort": "costliest"})
    assert response.headers["Location"] == "/?label=client-a&sort=costliest"
    assert 'href="/?label=client-a&amp;sort=costliest" aria-current="true"' in \
        text(client.get("/?label=client-a&sort=costliest"))
    client.post("/searches", data={"csrf_token": token, "name": "odd", "label": "client-a",
                                   "sort": "sideways"})
    assert catalogue.conn.execute("SELECT query FROM saved_searches WHERE name = 'odd'"
                                  ).fetchone() == ("label=client-a",)
