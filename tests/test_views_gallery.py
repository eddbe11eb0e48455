"""The gallery page: cards, keyset pages, search (prefix, phrase, hostile), filters, counts."""

import re

import pytest

from tests.history_helpers import archive, deliver, make_task, picture
from tests.views_helpers import app_config, catalogue, provider, store, text  # noqa: F401


def cards(response):
    return re.findall(r'data-card href="/tasks/([0-9a-f-]{36})', text(response))


def test_an_empty_gallery_invites_a_first_task(client):
    response = client.get("/")
    assert response.status_code == 200
    assert "No images yet" in text(response) and 'href="/new"' in text(response)


def test_cards_show_thumbnails_seed_cost_and_buttons(client, catalogue, store):
    task = make_task(catalogue, "a glasshouse tea train platform", width=1024, height=768)
    image = deliver(catalogue, task, 22452)[0]
    sha = archive(catalogue, store, image, picture(3))
    page = text(client.get("/"))
    assert f'src="/thumbs/{sha}.webp"' in page
    assert "#22452" in page and "$0.0006" in page and "1024×768" in page
    assert f'action="/tasks/{task}/rerun"' in page and f'href="/new?from={task}"' in page
    assert f'action="/results/{image}/star"' in page
    assert "<strong>1</strong> image in <strong>1</strong> task" in page


def test_pages_follow_the_cursor_without_overlap(client, catalogue, monkeypatch):
    from archive import browse as history
    monkeypatch.setattr(history, "PAGE_SIZE", 3)
    made = []
    for i in range(7):
        made.append(make_task(catalogue, f"harbor {i}"))
        deliver(catalogue, made[-1], i)
    first = client.get("/")
    assert cards(first) == made[::-1][:3]
    nxt = re.search(r'rel="next" href="([^"]+)"', text(first))[1].replace("&amp;", "&")
    second = client.get(nxt)
    assert cards(second) == made[::-1][3:6]
    assert not set(cards(first)) & set(cards(second))
    assert "« Newest" in text(second)


def test_search_prefix_and_phrase(client, catalogue):
    a = make_task(catalogue, "a lighthouse at golden hour")
    b = make_task(catalogue, "golden retriever, hour of fog")
    assert set(cards(client.get("/?q=light"))) == {a}
    assert set(cards(client.get("/?q=gold+hour"))) == {a, b}
    assert set(cards(client.get('/?q="golden+hour"'))) == {a}


@pytest.mark.parametrize("q", ['"', "*", "NEAR(", "-", "'", "a AND", "(", "x:y", "^", '""'])
def test_hostile_searches_are_an_empty_page_not_an_error(client, catalogue, q):
    make_task(catalogue, "a harbor")
    response = client.get("/", query_string={"q": q})
    assert response.status_code == 200


def test_filters_and_their_counts(client, catalogue):
    old = make_task(catalogue, "old harbor", created_at="2025-01-10T08:00:00.000000Z",
                    provider="runware", width=512, height=512)
    new = make_task(catalogue, "new harbor")
    failed = make_task(catalogue, "failed harbor", status="error")
    deliver(catalogue, old, 1)
    starred = deliver(catalogue, new, 2, 3, cost=0.001)[0]
    catalogue.conn.execute("UPDATE results SET starred = 1 WHERE image_uuid = ?", (starred,))
    assert cards(client.get("/?provider=runware")) == [old]
    assert cards(client.get("/?size=512x512")) == [old]
    assert cards(client.get("/?status=error")) == [failed]
    assert cards(client.get("/?since=2025-01-10&until=2025-01-10")) == [old]
    assert cards(client.get("/?starred=1")) == [new]
    assert cards(client.get("/?model=runware%3Atwinflow-z-image-turbo%400")) == [failed, new, new, old]
    everything = text(client.get("/"))
    assert "<strong>3</strong> images in <strong>3</strong> tasks" in everything
    assert "<strong>$0.0026</strong>" in everything
    starred_page = text(client.get("/?starred=1"))
    assert "<strong>1</strong> image in <strong>1</strong> task" in starred_page
    assert "$0.0010" in starred_page
    assert 'option value="512x512" selected' in text(client.get("/?size=512x512"))


def test_a_count_past_the_cap_says_more_than(client, catalogue, monkeypatch):
    from archive import browse as history
    monkeypatch.setattr(history, "SUMMARY_CAP", 2)
    for i in range(3):
        deliver(catalogue, make_task(catalogue, f"harbor {i}"), i, cost=0.001)
    page = text(client.get("/?q=harbor"))
    assert "More than <strong>2</strong> tasks match; the newest 2 hold <strong>2</strong>" \
        " images · <strong>$0.0020</strong>" in page
    assert "<strong>3</strong> images in <strong>3</strong> tasks" in text(client.get("/"))


def test_a_bad_filter_is_ignored_and_said(client, catalogue):
    make_task(catalogue)
    response = client.get("/?since=yesterday&size=huge")
    assert response.status_code == 200
    assert "Ignored since" in text(response) and "Ignored size" in text(response)


def test_placeholders_for_tasks_without_images(client, catalogue):
    task = make_task(catalogue, "still cooking")
    page = text(client.get("/"))
    assert cards(client.get("/")) == [task]
    assert "sending" in page


def links(response):
    """The pager's links, ``{label: href}``."""
    return {label.strip(): href.replace("&amp;", "&") for href, label in re.findall(
        r'<a class="button"(?: rel="\w+")? href="([^"]+)">([^<]+)</a>', text(response))}


def test_pages_go_both_ways_with_both_ends(client, catalogue, monkeypatch):
    from archive import browse as history
    monkeypatch.setattr(history, "PAGE_SIZE", 3)
    made = [make_task(catalogue, f"harbor {i}") for i in range(8)]
    for i, task in enumerate(made):
        deliver(catalogue, task, i)
    newest = made[::-1]
    first = client.get("/")
    assert set(links(first)) == {"Older ›", "Oldest »"}
    second = client.get(links(first)["Older ›"])
    assert cards(second) == newest[3:6]
    assert set(links(second)) == {"« Newest", "‹ Newer", "Older ›", "Oldest »"}
    assert cards(client.get(links(second)["‹ Newer"])) == newest[:3]
    last = client.get(links(second)["Oldest »"])
    assert cards(last) == newest[-3:] and set(links(last)) == {"« Newest", "‹ Newer"}
    assert cards(client.get(links(last)["‹ Newer"])) == newest[2:5]


def test_sort_orders_and_their_links(client, catalogue, monkeypatch):
    from archive import browse as history
    monkeypatch.setattr(history, "PAGE_SIZE", 2)
    cheap = make_task(catalogue, "cheap harbor", width=512, height=512)
    dear = make_task(catalogue, "dear harbor", width=1024, height=1024)
    middle = make_task(catalogue, "middle harbor", width=768, height=1024)
    for task, cost in ((cheap, 0.0001), (dear, 0.003), (middle, 0.001)):
        deliver(catalogue, task, 1, cost=cost)
    assert cards(client.get("/?sort=oldest")) == [cheap, dear]
    costliest = client.get("/?sort=costliest")
    assert cards(costliest) == [dear, middle]
    assert 'value="costliest" selected' in text(costliest)
    nxt = links(costliest)["Next ›"]
    assert "sort=costliest" in nxt and cards(client.get(nxt)) == [cheap]
    assert cards(client.get("/?sort=smallest")) == [cheap, middle]


@pytest.mark.parametrize("query", ["sort=best", "cursor=x", "before=1.2.3",
                                   "sort=costliest&cursor=5.1", "cursor=0.5_1.1",
                                   "cursor=99999999999999999999.1"])
def test_a_bad_sort_or_cursor_is_a_400(client, catalogue, query):
    deliver(catalogue, make_task(catalogue), 1)
    response = client.get(f"/?{query}")
    assert response.status_code == 400
    assert "sort" in text(response) or "cursor" in text(response)


def test_density_is_remembered_in_a_cookie(client, catalogue):
    deliver(catalogue, make_task(catalogue), 1)
    assert "density-medium" in text(client.get("/"))
    response = client.get("/?density=large")
    assert "density-large" in text(response)
    assert "gallery_density=large" in response.headers["Set-Cookie"]
    assert "density-large" in text(client.get("/"))  # the cookie, without the query
    assert "density-large" in text(client.get("/?density=huge"))  # a bad one is ignored


def test_cards_carry_their_images_proportions(client, catalogue, store):
    portrait = make_task(catalogue, "a tall tower", width=768, height=1024)
    wide = make_task(catalogue, "a wide canyon", width=1024, height=576)
    archive(catalogue, store, deliver(catalogue, portrait, 1)[0], picture(1, size=(96, 128)))
    deliver(catalogue, wide, 2)  # not archived yet: the task's own size
    page = text(client.get("/"))
    assert re.search(rf'class="card ar-m10"[^>]*id="card-[^"]+"', page)  # 3:4, log2 × 24
    assert 'class="card ar-20"' in page  # 16:9
    assert '<h1 class="visually-hidden">Gallery</h1>' in page


def test_every_aspect_class_is_in_the_stylesheet():
    from pathlib import Path
    from receiver.views.gallery import ASPECT_SPAN, aspect_class
    css = (Path(__file__).parents[1] / "receiver" / "static" / "gallery.css").read_text()
    for step in range(-ASPECT_SPAN, ASPECT_SPAN + 1):
        name = f"ar-{step}" if step >= 0 else f"ar-m{-step}"
        assert f".{name} {{ --ar: {2 ** (step / 24):.4f}; }}" in css
    assert aspect_class(1, 100) == "ar-m48" and aspect_class(100, 1) == "ar-48"
    assert aspect_class(0, 5) == "ar-0"
