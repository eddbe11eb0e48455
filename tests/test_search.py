"""archive.search (the query language) and the gallery's search over prompt, negative prompt,
label and seed, on a real catalogue file."""

import pytest
from hypothesis import given, settings, strategies as st

from archive import browse, search
from archive.catalogue import Catalogue
from tests.history_helpers import deliver, make_task


@pytest.mark.parametrize("text,fts", [
    ("lighthouse", '"lighthouse"*'),
    ("light house", '"light"* AND "house"*'),
    ('"golden hour" fog', '"golden hour" AND "fog"*'),
    ("cat -dog", '("cat"*) NOT ("dog"*)'),
    ('cat -"wet dog" -fur', '("cat"*) NOT ("wet dog" OR "fur"*)'),
    ("cat OR dog", '("cat"*) OR ("dog"*)'),
    ("a b OR c", '("a"* AND "b"*) OR ("c"*)'),
    ("label:client-a", 'label : "client a"*'),
    ('neg:"bad hands"', 'negative_prompt : "bad hands"'),
    ("prompt:fog", 'positive_prompt : "fog"*'),
    ("night-time", '"night time"*'),
    ("l'été", '"l été"*'),
    ('NEAR(a b) "unclosed', '"NEAR a"* AND "b"* AND "unclosed"'),
    ("http://x.y", '"http x y"*'),
    ("or", '"or"*'),
])
def test_terms_become_quoted_fts5(text, fts):
    plan = search.plan(text)
    assert plan.fts == fts and plan.clause is None and not plan.nothing


@pytest.mark.parametrize("text", ['"', "*", "-", "'", "OR", "seed:x", '""', "-*"])
def test_nothing_searchable_is_said_not_run(text):
    assert search.plan(text).nothing


@pytest.mark.parametrize("text,notice", [
    ('"unclosed', "closing quote was missing"),
    ("OR cat", "OR needs a term on each side"),
    ("cat OR", "OR needs a term on each side"),
    ("cat OR OR dog", "OR needs a term on each side"),
    ("cat -", "has no word"),
    ("seed:12ab", "seed: needs a whole number"),
    (" ".join(f"w{i}" for i in range(40)), "Only the first 32 terms"),
])
def test_bad_syntax_is_a_notice_and_a_best_effort(text, notice):
    plan = search.plan(text)
    assert any(notice in n for n in plan.notices), plan.notices
    assert not plan.nothing or text.startswith("seed")


def test_a_number_is_text_and_a_seed():
    plan = search.plan("1234")
    assert plan.fts == '"1234"*' and plan.seeds == (1234,)
    assert "r.seed IS ?" in plan.clause and plan.args == ['"1234"*', 1234]
    assert search.plan("seed:77").seeds == (77,) and search.plan("seed:77").fts is None
    assert search.plan(str(2**63)).seeds == ()  # past Runware's seed range: text only


def test_exclusions_only_walk_everything():
    plan = search.plan("-cat")
    assert plan.walk_all and plan.clause.startswith("((NOT EXISTS")


def test_describe_reads_the_query_back():
    assert search.describe(search.parse('fog -rain OR label:x 12')) == \
        "fog… and not rain… — or — label:x… and 12… or seed 12"


@pytest.fixture
def cat(tmp_path, migrated_copy):
    catalogue = Catalogue(migrated_copy(tmp_path / "catalogue.db"))
    catalogue.migrate()
    return catalogue


def found(catalogue, q, **filters):
    page = browse.gallery(catalogue.conn, browse.Filters(q=q, **filters))
    return [(c["task_uuid"], c["seed"]) for c in page.cards]


def tasks(catalogue, q, **filters):
    return {task for task, _ in found(catalogue, q, **filters)}


@pytest.fixture
def world(cat):
    fog = make_task(cat, "a harbor in fog", negativePrompt="blurry, text", label="client-a")
    rain = make_task(cat, "a street in rain", negativePrompt="people", label="client-b")
    both = make_task(cat, "fog and rain over 1024 towers", label="client-a")
    bare = make_task(cat, "a desert at noon")  # no result: a placeholder card
    deliver(cat, fog, 555, 556)
    deliver(cat, rain, 777)
    deliver(cat, both, 1024)
    return {"fog": fog, "rain": rain, "both": both, "bare": bare, "cat": cat}


def test_search_reads_prompt_negative_prompt_and_label(world):
    cat = world["cat"]
    assert tasks(cat, "blurry") == {world["fog"]}
    assert tasks(cat, "client-a") == {world["fog"], world["both"]}
    assert tasks(cat, "label:client-b") == {world["rain"]}
    assert tasks(cat, "neg:people") == {world["rain"]}
    assert tasks(cat, "prompt:people") == set()


def test_minus_excludes_and_or_joins(world):
    cat = world["cat"]
    assert tasks(cat, "fog -rain") == {world["fog"]}
    assert tasks(cat, "harbor OR street") == {world["fog"], world["rain"]}
    assert tasks(cat, "-fog") == {world["rain"], world["bare"]}  # the placeholder stays
    assert tasks(cat, "-fog -rain") == {world["bare"]}
    assert tasks(cat, "desert OR -fog -rain") == {world["bare"]}
    assert tasks(cat, '"in fog"') == {world["fog"]}


def test_a_number_finds_its_seed_exactly_and_its_text(world):
    cat = world["cat"]
    assert found(cat, "777") == [(world["rain"], 777)]
    assert found(cat, "555") == [(world["fog"], 555)]  # that image, not its sibling 556
    assert found(cat, "55") == []  # seeds match exactly, not as prefixes
    assert found(cat, "1024") == [(world["both"], 1024)]  # its seed and its prompt
    assert found(cat, "seed:556") == [(world["fog"], 556)]
    assert found(cat, "harbor -556") == [(world["fog"], 555)]
    assert set(found(cat, "777 OR harbor")) == {(world["fog"], 556), (world["fog"], 555),
                                                (world["rain"], 777)}
    assert found(cat, "777", label="client-a") == []


def test_the_summary_counts_what_the_search_shows(world):
    cat = world["cat"]
    assert browse.summary(cat.conn, browse.Filters(q="555")) == \
        {"images": 1, "tasks": 1, "cost": 0.0006, "capped": False}
    assert browse.summary(cat.conn, browse.Filters(q="-fog"))["tasks"] == 2
    assert browse.summary(cat.conn, browse.Filters(q="client-a"))["images"] == 3
    star = cat.conn.execute("SELECT image_uuid FROM results WHERE seed = 556").fetchone()[0]
    cat.conn.execute("UPDATE results SET starred = 1 WHERE image_uuid = ?", (star,))
    assert found(cat, "harbor", starred=True) == [(world["fog"], 556)]
    assert found(cat, "556", starred=True) == [(world["fog"], 556)]
    assert found(cat, "555", starred=True) == []
    assert browse.summary(cat.conn, browse.Filters(q="-rain", starred=True))["images"] == 1


def test_the_label_filter_and_the_labels_in_use(world):
    cat = world["cat"]
    assert browse.labels(cat.conn) == ["client-a", "client-b"]
    cards = browse.gallery(cat.conn, browse.Filters(label="client-a")).cards
    assert {c["task_uuid"] for c in cards} == {world["fog"], world["both"]}
    assert browse.summary(cat.conn, browse.Filters(label="client-b"))["images"] == 1


def test_a_relabelled_task_is_found_by_its_new_label(world):
    cat = world["cat"]
    with cat.write() as conn:
        conn.execute("UPDATE tasks SET label = 'renamed' WHERE task_uuid = ?", (world["rain"],))
    assert tasks(cat, "renamed") == {world["rain"]} and tasks(cat, "client-b") == set()


def test_seed_candidates_page_past_a_batch(cat, monkeypatch):
    monkeypatch.setattr(browse, "SEARCH_BATCH", 1)
    wanted = []
    for i in range(4):
        task = make_task(cat, f"lantern {i}")
        deliver(cat, task, 42)
        wanted.append(task)
        deliver(cat, make_task(cat, f"other {i}"), 7)
    cursor, seen = None, []
    while True:
        page = browse.gallery(cat.conn, browse.Filters(q="42"), cursor=cursor, limit=1)
        seen += [c["task_uuid"] for c in page.cards]
        if not page.next:
            break
        cursor = page.next
    assert seen == wanted[::-1]


def test_notices_reach_the_page(world):
    page = browse.gallery(world["cat"].conn, browse.Filters(q='"in fog'))
    assert [c["task_uuid"] for c in page.cards] == [world["fog"]] * 2
    assert any("closing quote" in n for n in page.notices)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    catalogue = Catalogue(tmp_path_factory.mktemp("search") / "catalogue.db")
    catalogue.migrate()
    deliver(catalogue, make_task(catalogue, "fog over 12 towers", label="client-a"), 12)
    make_task(catalogue, "rain", negativePrompt="fog")
    return catalogue


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(['"', "-", "OR", "or", ":", "seed:", "label:", "neg:", "12",
                                 "fog", "rain", "client-a", " ", "*", "(", "9" * 25, "é"]),
                max_size=12).map("".join))
def test_any_mix_of_the_syntax_runs_and_counts(small, text):
    plan = search.plan(text)
    assert plan.nothing or plan.fts or plan.seeds or plan.clause
    for starred in (False, True):
        filters = browse.Filters(q=text, starred=starred)
        page = browse.gallery(small.conn, filters)
        totals = browse.summary(small.conn, filters)
        assert totals["images"] >= sum(1 for c in page.cards if c["image_uuid"])
