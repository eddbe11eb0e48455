"""archive.ordering and the gallery's walks: every sort order, paged forward from the first
page and backward from the last, shows every card once, in order, with and without
filters and search; a cursor of another order, or none at all, is refused."""

import pytest

from archive import browse, ordering
from archive.catalogue import Catalogue
from tests.history_helpers import deliver, make_task

SIZES = [(1024, 1024), (512, 512), (768, 1024), (1024, 576), (512, 512), (1024, 768)]


@pytest.fixture
def catalogue(tmp_path, migrated_copy):
    cat = Catalogue(migrated_copy(tmp_path / "catalogue.db"))
    for i, (width, height) in enumerate(SIZES * 2):
        task = make_task(cat, f"harbor {'fog' if i % 2 else 'dawn'} {i}", width=width,
                         height=height, numberResults=1 + i % 3)
        deliver(cat, task, *range(10 * i, 10 * i + 1 + i % 3), cost=0.0001 * (1 + i % 4))
    make_task(cat, "harbor still waiting")  # a placeholder, in the id and size orders
    cat.conn.execute("UPDATE results SET starred = 1 WHERE id % 3 = 0")
    return cat


def expected(conn, order, filters):
    """Every card of ``order`` in one page (the reference the paged walks must match)."""
    return keys(browse.gallery(conn, filters, order=order, limit=10_000).cards)


def keys(cards):
    return [(c["task_id"], c["result_id"]) for c in cards]


def forward(conn, order, filters, limit):
    seen, page = [], browse.gallery(conn, filters, order=order, limit=limit)
    assert page.previous is None
    while True:
        seen += keys(page.cards)
        if page.next is None:
            return seen
        page = browse.gallery(conn, filters, order=order, cursor=page.next, limit=limit)
        assert page.previous is not None


def backward(conn, order, filters, limit):
    seen, page = [], browse.gallery(conn, filters, order=order, last=True, limit=limit)
    assert page.next is None
    while True:
        seen = keys(page.cards) + seen
        if page.previous is None:
            return seen
        page = browse.gallery(conn, filters, order=order, before=page.previous, limit=limit)
        assert page.next is not None


@pytest.mark.parametrize("name", list(ordering.ORDERS))
@pytest.mark.parametrize("filters", [browse.Filters(), browse.Filters(q="fog"),
                                     browse.Filters(size="512x512"),
                                     browse.Filters(q="harbor", size="1024x1024"),
                                     browse.Filters(q="harbor -fog"),
                                     browse.Filters(q="20 OR 51"),
                                     browse.Filters(q="fog", starred=True)],
                         ids=["all", "search", "size", "search+size", "exclusion", "seeds",
                              "starred"])
@pytest.mark.parametrize("limit", [1, 4, 7])
def test_every_order_pages_both_ways_over_every_card_once(catalogue, name, filters, limit):
    order = ordering.ORDERS[name]
    everything = expected(catalogue.conn, order, filters)
    assert everything and len(set(everything)) == len(everything)
    assert forward(catalogue.conn, order, filters, limit) == everything
    assert backward(catalogue.conn, order, filters, limit) == everything


def test_the_orders_sort_what_they_say(catalogue):
    conn = catalogue.conn

    def cards(name):
        return browse.gallery(conn, order=ordering.ORDERS[name], limit=1000).cards

    newest, oldest = cards("newest"), cards("oldest")
    assert keys(oldest) != keys(newest) and newest[0]["image_uuid"] is None
    assert [c["task_id"] for c in oldest] == sorted(c["task_id"] for c in oldest)
    costs = [c["cost"] for c in cards("costliest")]
    assert costs == sorted(costs, reverse=True) and costs[0] == pytest.approx(0.0004)
    assert [c["cost"] for c in cards("cheapest")] == sorted(costs)
    assert all(c["image_uuid"] for c in cards("cheapest"))  # no image, no price: left out
    pixels = [c["width"] * c["height"] for c in cards("largest")]
    assert pixels == sorted(pixels, reverse=True)
    assert [c["width"] * c["height"] for c in cards("smallest")] == sorted(pixels)


def test_a_page_in_the_middle_knows_both_neighbours(catalogue):
    conn, order = catalogue.conn, ordering.ORDERS["costliest"]
    first = browse.gallery(conn, order=order, limit=5)
    second = browse.gallery(conn, order=order, cursor=first.next, limit=5)
    back = browse.gallery(conn, order=order, before=second.previous, limit=5)
    assert keys(back.cards) == keys(first.cards) and back.previous is None
    assert back.next == first.next


@pytest.mark.parametrize("name,cursor", [
    ("newest", "0.0006_12.3"), ("costliest", "12.3"), ("largest", "0.5_12.3"),
    ("largest", "1e400_1.1"), ("costliest", "nan_1.1"), ("newest", "1.2.3"),
    ("newest", "9223372036854775808.0"), ("costliest", "1e5000_1.1"),
])
def test_a_cursor_of_another_order_is_refused(catalogue, name, cursor):
    with pytest.raises(ValueError):
        browse.gallery(catalogue.conn, order=ordering.ORDERS[name], cursor=cursor)


def test_a_cost_reads_back_exactly():
    position = ordering.Position(0.1 + 0.2, 5, 6)
    assert ordering.parse_position(position.text(), ordering.ORDERS["cheapest"]) == position
    assert ordering.parse_position("1048576_5.6", ordering.ORDERS["largest"]) == \
        ordering.Position(1048576, 5, 6)
