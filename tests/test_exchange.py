"""Export and import: a zip of originals and a JSON-lines manifest that reproduces the same
catalogue rows and files in an empty data folder, idempotently, verifying every sha256."""

import base64
import hashlib
import json
import os
import uuid
import zipfile

import pytest
from click.testing import CliRunner

from archive import keys
from archive.catalogue import Catalogue
from archive.exchange import ExchangeError, export, import_archive
from archive.filestore import FileStore
from archive.images import inline_image_columns
from receiver import config as settings
from receiver.cli import main
from tests.imagehost import picture


class Archive:
    """A catalogue and an image store in one data folder."""

    copy = None  # migrated_copy, set for each test below

    def __init__(self, folder):
        self.folder = folder
        self.catalogue = Catalogue(self.copy(folder / "catalogue.db"))
        self.catalogue.migrate()
        self.store = FileStore(folder)

    def add_task(self, prompt, images, *, parent=None, created="2026-03-01T10:00:00.000000Z",
                 urls=()):
        """A task with one inline result per image (archived at ingest) plus URL results."""
        task_uuid = str(uuid.uuid4())
        self.catalogue.create_task({
            "task_uuid": task_uuid, "model": "runware:twinflow-z-image-turbo@0",
            "positive_prompt": prompt, "provider": "sandbox", "parent_task_uuid": parent,
            "rerun_mode": "exact" if parent else None, "created_at": created, "seed": 7,
            "params": {"positivePrompt": prompt, "seed": 7, "lora": [{"model": "a:b@c"}]},
            "number_results": len(images) + len(urls), "label": "client-a"})
        items = [{"imageUUID": str(uuid.uuid4()), "seed": 7 + i, "cost": 0.0006,
                  "imageBase64Data": base64.b64encode(data).decode()}
                 for i, data in enumerate(images)]
        items += [{"imageUUID": str(uuid.uuid4()), "seed": 99, "cost": 0.0013, "imageURL": url}
                  for url in urls]
        self.catalogue.ingest(task_uuid, results=items,
                              columns_for=inline_image_columns(self.store))
        return task_uuid

    def dump(self):
        """Every task and result row (without row ids and claims), and every file."""
        conn = self.catalogue.conn

        def table(sql, skip):
            cur = conn.execute(sql)
            names = [d[0] for d in cur.description]
            return [{k: v for k, v in zip(names, row) if k not in skip} for row in cur]

        files = {}
        for folder, dirs, names in os.walk(self.store.images):
            dirs[:] = [d for d in dirs if d != ".tmp"]
            for name in names:
                with open(os.path.join(folder, name), "rb") as f:
                    files[name] = hashlib.sha256(f.read()).hexdigest()
        return {"tasks": table("SELECT * FROM tasks ORDER BY task_uuid", {"id"}),
                "results": table("SELECT * FROM results ORDER BY image_uuid",
                                 {"id", "claimed_by", "claimed_until"}),
                "files": files}


@pytest.fixture(autouse=True)
def archives_from_the_template(monkeypatch, migrated_copy):
    """Each Archive's catalogue starts as a copy of the session's migrated one (one the
    import command made stays its own)."""
    monkeypatch.setattr(Archive, "copy", staticmethod(migrated_copy))


@pytest.fixture
def source(tmp_path):
    archive = Archive(tmp_path / "source")
    shared = picture("PNG", colour=(1, 2, 3))
    parent = archive.add_task("a lantern bazaar on an ice harbor",
                              [shared, picture("JPEG", colour=(9, 9, 9))])
    archive.add_task("a lantern bazaar, again", [shared], parent=parent,
                     created="2026-03-05T10:00:00.000000Z")
    archive.add_task("a tidal library atrium", [picture("WEBP", colour=(200, 1, 1))],
                     created="2026-03-09T10:00:00.000000Z",
                     urls=["https://im.runware.ai/image/os/a1b2c3/ws/2/ii/x.jpg"])
    return archive


def test_export_then_import_reproduces_rows_and_files(tmp_path, source):
    out = tmp_path / "archive.zip"
    summary = export(source.catalogue, source.store, out)
    assert (summary.tasks, summary.results, summary.files) == (3, 5, 3)
    target = Archive(tmp_path / "target")
    restored = import_archive(target.catalogue, target.store, out)
    assert (restored.tasks, restored.results, restored.files) == (3, 5, 3)
    assert target.dump() == source.dump()
    with zipfile.ZipFile(out) as zf:
        lines = zf.read("manifest.jsonl").decode().splitlines()
    header, first, footer = json.loads(lines[0]), json.loads(lines[1]), json.loads(lines[-1])
    assert header["format"] == "runware-archive-export" and header["version"] == 1
    assert first["task"]["params"]["lora"] == [{"model": "a:b@c"}]
    assert footer == {"end": {"tasks": 3, "results": 5, "files": 3}}


def test_importing_twice_changes_nothing(tmp_path, source):
    out = tmp_path / "archive.zip"
    export(source.catalogue, source.store, out)
    target = Archive(tmp_path / "target")
    import_archive(target.catalogue, target.store, out)
    before = target.dump()
    again = import_archive(target.catalogue, target.store, out)
    assert (again.tasks, again.results, again.files, again.updated) == (0, 0, 0, 0)
    assert target.dump() == before
    into_itself = import_archive(source.catalogue, source.store, out)
    assert (into_itself.tasks, into_itself.results) == (0, 0)


def test_a_file_that_does_not_match_its_sha256_is_refused_and_nothing_changes(
        tmp_path, source):
    out, bad = tmp_path / "archive.zip", tmp_path / "tampered.zip"
    export(source.catalogue, source.store, out)
    with zipfile.ZipFile(out) as zin, zipfile.ZipFile(bad, "w") as zout:
        victim = sorted(n for n in zin.namelist() if n.startswith("images/"))[0]
        for name in zin.namelist():
            data = zin.read(name)
            zout.writestr(name, picture("PNG", colour=(0, 0, 0)) if name == victim else data)
    target = Archive(tmp_path / "target")
    with pytest.raises(ExchangeError, match="do not match the sha256"):
        import_archive(target.catalogue, target.store, bad)
    assert target.dump() == {"tasks": [], "results": [], "files": {}}


def test_a_result_not_yet_archived_here_is_completed_from_the_import(tmp_path, source):
    out = tmp_path / "archive.zip"
    export(source.catalogue, source.store, out)
    target = Archive(tmp_path / "target")
    import_archive(target.catalogue, target.store, out)
    with target.catalogue.write() as conn:
        conn.execute("UPDATE results SET archive_state = 'pending', sha256 = NULL"
                     " WHERE archive_state = 'archived'")
    summary = import_archive(target.catalogue, target.store, out)
    assert summary.updated == 4
    assert target.dump()["results"] == source.dump()["results"]


def test_since_and_query_select_tasks_and_keep_their_ancestors(tmp_path, source):
    out = tmp_path / "part.zip"
    summary = export(source.catalogue, source.store, out, query="again")
    assert (summary.tasks, summary.files) == (2, 2)  # the re-run and its parent
    summary = export(source.catalogue, source.store, out, since="2026-03-08")
    assert (summary.tasks, summary.results, summary.files) == (1, 2, 1)
    target = Archive(tmp_path / "target")
    import_archive(target.catalogue, target.store, out)
    assert [t["positive_prompt"] for t in target.dump()["tasks"]] == ["a tidal library atrium"]


def test_an_export_refuses_a_damaged_store_and_leaves_no_file(tmp_path, source):
    sha, ext = source.catalogue.conn.execute(
        "SELECT sha256, file_ext FROM results WHERE file_ext = 'webp'").fetchone()
    with open(source.store.path(sha, ext), "ab") as f:
        f.write(b"rot")
    out = tmp_path / "archive.zip"
    with pytest.raises(ExchangeError, match="no longer matches its sha256"):
        export(source.catalogue, source.store, out)
    assert not out.exists() and list(tmp_path.glob("*.part")) == []


def test_the_export_and_import_commands(tmp_path, source, monkeypatch):
    for key in settings.DEFAULTS:
        monkeypatch.delenv(key, raising=False)
    runner, out = CliRunner(), tmp_path / "cli.zip"
    result = runner.invoke(main, ["export", "--out", str(out)],
                           env={"RUNWARE_ARCHIVE_DIR": str(source.folder)})
    assert result.exit_code == 0, result.output
    assert "exported 3 tasks, 5 results, 3 files" in result.output
    target = tmp_path / "fresh"
    result = runner.invoke(main, ["import", str(out)], env={"RUNWARE_ARCHIVE_DIR": str(target)})
    assert result.exit_code == 0, result.output
    assert "imported 3 new tasks, 5 new results, 3 new files" in result.output
    assert Archive(target).dump() == source.dump()
    result = runner.invoke(main, ["import", str(tmp_path / "cli.zip")],
                           env={"RUNWARE_ARCHIVE_DIR": str(target)})
    assert "imported 0 new tasks, 0 new results, 0 new files" in result.output
    result = runner.invoke(main, ["export", "--out", str(out), "--since", "2026-03-08"],
                           env={"RUNWARE_ARCHIVE_DIR": str(source.folder)})
    assert "exported 1 tasks, 2 results, 1 files" in result.output
    result = runner.invoke(main, ["export", "--out", str(out), "--since", "last week"],
                           env={"RUNWARE_ARCHIVE_DIR": str(source.folder)})
    assert result.exit_code == 2 and "last week" in result.output


def test_a_manifest_cut_short_is_refused_before_anything_is_written(tmp_path, source):
    out, cut = tmp_path / "archive.zip", tmp_path / "cut.zip"
    export(source.catalogue, source.store, out)
    with zipfile.ZipFile(out) as zin, zipfile.ZipFile(cut, "w") as zout:
        for name in zin.namelist():
            data = zin.read(name)
            zout.writestr(name, data.rsplit(b"\n", 2)[0] + b"\n" if name == "manifest.jsonl"
                          else data)
    target = Archive(tmp_path / "target")
    with pytest.raises(ExchangeError, match="incomplete"):
        import_archive(target.catalogue, target.store, cut)
    assert target.dump() == {"tasks": [], "results": [], "files": {}}


def test_an_import_completes_a_task_the_target_holds_in_part(tmp_path):
    """The task is complete in the export and partial here: its missing result arrives
    through the one ingest, so status, counters and cost follow the same rule as a
    webhook's, and the arrival is one row in the delivery log."""
    source = Archive(tmp_path / "source")
    task_uuid = source.add_task("a salt marsh at dusk", [picture("PNG", colour=(5, 6, 7)),
                                                         picture("JPEG", colour=(70, 8, 9))])
    out = tmp_path / "archive.zip"
    export(source.catalogue, source.store, out)
    exported = source.catalogue.get_task(task_uuid)
    assert (exported["status"], exported["results_received"]) == ("complete", 2)

    target = Archive(tmp_path / "target")
    target.catalogue.create_task({k: exported[k] for k in (
        "task_uuid", "model", "positive_prompt", "provider", "params", "number_results",
        "created_at", "seed", "label")})
    first = exported["results"][0]
    target.catalogue.ingest(task_uuid, results=[{  # the same image, not downloaded yet
        "imageUUID": first["image_uuid"], "cost": first["cost"], "seed": first["seed"],
        "imageURL": "https://im.runware.ai/image/ws/2/ii/first.png"}])
    assert target.catalogue.get_task(task_uuid)["status"] == "partial"

    summary = import_archive(target.catalogue, target.store, out)
    assert (summary.tasks, summary.results, summary.updated) == (0, 1, 1)
    task = target.catalogue.get_task(task_uuid)
    assert (task["status"], task["results_received"]) == ("complete", 2)
    assert task["cost"] == pytest.approx(sum(r["cost"] for r in exported["results"]))
    assert task["completed_at"] is not None
    assert [r["archive_state"] for r in task["results"]] == ["archived", "archived"]
    assert {r["sha256"] for r in task["results"]} == {r["sha256"] for r in exported["results"]}
    imports = [d for d in target.catalogue.deliveries(task_uuid=task_uuid)
               if d["source"] == "import"]
    assert [(d["verdict"], d["results_new"], d["results_duplicate"]) for d in imports] == [
        ("accepted", 1, 1)]


def test_an_imported_task_belongs_to_no_client_key(tmp_path):
    """A key id names a key of the archive it was exported from: here it would be another
    key's, counting against its budget and answering its getResponse."""
    source = Archive(tmp_path / "source")
    task_uuid = source.add_task("a copper aviary", [picture("PNG", colour=(1, 2, 3))])
    key_id = keys.create(source.catalogue, "a client of the source")[0]["id"]
    with source.catalogue.write() as conn:
        conn.execute("UPDATE tasks SET key_id = ? WHERE task_uuid = ?", (key_id, task_uuid))
    out = tmp_path / "archive.zip"
    export(source.catalogue, source.store, out)
    target = Archive(tmp_path / "target")
    import_archive(target.catalogue, target.store, out)
    assert target.catalogue.get_task(task_uuid)["key_id"] is None
