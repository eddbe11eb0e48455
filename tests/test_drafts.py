"""The submit form's drafts (archive/drafts.py) on a real catalogue: kept under a random
id, read back by it only, gone after their lifetime, and never more than their cap."""

from archive import drafts
from archive.catalogue import Catalogue


def make(migrated_copy, tmp_path):
    return Catalogue(migrated_copy(tmp_path / "catalogue.db"))


def test_a_draft_is_read_back_by_its_id_only(migrated_copy, tmp_path):
    catalogue = make(migrated_copy, tmp_path)
    first = drafts.save(catalogue, {"values": {"positivePrompt": "a harbor ☂"}, "errors": {}})
    second = drafts.save(catalogue, {"values": {}, "errors": {"width": ["bad"]}})
    assert first != second and len(first) >= 20
    assert drafts.load(catalogue.conn, first)["values"]["positivePrompt"] == "a harbor ☂"
    assert drafts.load(catalogue.conn, second)["errors"] == {"width": ["bad"]}
    assert drafts.load(catalogue.conn, "no-such-draft") is None


def test_old_drafts_go_and_the_count_is_capped(migrated_copy, tmp_path, monkeypatch):
    catalogue = make(migrated_copy, tmp_path)
    old = drafts.save(catalogue, {"n": 0})
    with catalogue.write() as conn:
        conn.execute("UPDATE form_drafts SET created_at = '2020-01-01T00:00:00.000000Z'")
    assert drafts.load(catalogue.conn, old) is None  # past its lifetime: not shown
    monkeypatch.setattr(drafts, "MAX_DRAFTS", 3)
    kept = [drafts.save(catalogue, {"n": i}) for i in range(1, 6)]
    ids = {row[0] for row in catalogue.conn.execute("SELECT id FROM form_drafts")}
    assert ids == set(kept[-3:])  # the old one pruned, and only the newest three
