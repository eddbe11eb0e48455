"""What a user does to their archive besides browsing it: star an image, delete a task
with its results and uploads (the files no other result shares go from the image store
afterwards: :meth:`archive.images.ImageStore.delete_unreferenced`); the same for several
images at once, picked in the gallery."""

import json


def set_starred(catalogue, image_uuid, starred):
    """Star or unstar one result; returns whether it exists."""
    with catalogue.write() as conn:
        cur = conn.execute("UPDATE results SET starred = ? WHERE image_uuid = ?",
                           (1 if starred else 0, image_uuid))
    return cur.rowcount == 1


def delete_task(catalogue, task_uuid):
    """Delete a task and its results in one transaction; returns the SHA-256s its
    results pointed at (for the image store to delete those no one else shares), or
    None when there is no such task.

    Its uploads go too. Its re-runs stay, with their ``parent_task_uuid`` cleared (their
    ``rerun_mode`` still says what they were). The delivery log keeps its rows: it is the record of what the
    provider sent and what was answered, and holds no prompt.
    """
    with catalogue.write() as conn:
        if conn.execute("SELECT 1 FROM tasks WHERE task_uuid = ?", (task_uuid,)).fetchone() is None:
            return None
        return _drop_task(conn, task_uuid)


def _drop_task(conn, task_uuid):
    """Delete a task, its results and uploads inside the caller's transaction; the
    SHA-256s they pointed at."""
    hashes = [row[0] for row in conn.execute(
        "SELECT sha256 FROM results WHERE task_uuid = ? AND sha256 IS NOT NULL"
        " UNION SELECT sha256 FROM uploads WHERE task_uuid = ?", (task_uuid, task_uuid))]
    conn.execute("UPDATE tasks SET parent_task_uuid = NULL WHERE parent_task_uuid = ?",
                 (task_uuid,))
    conn.execute("DELETE FROM uploads WHERE task_uuid = ?", (task_uuid,))
    conn.execute("DELETE FROM results WHERE task_uuid = ?", (task_uuid,))
    conn.execute("DELETE FROM tasks WHERE task_uuid = ?", (task_uuid,))
    return hashes


def set_starred_many(catalogue, image_uuids, starred):
    """Star or unstar several results in one transaction; returns how many exist."""
    with catalogue.write() as conn:
        cur = conn.execute(
            "UPDATE results SET starred = ? WHERE image_uuid IN"
            " (SELECT value FROM json_each(?))", (1 if starred else 0, json.dumps(image_uuids)))
    return cur.rowcount


def delete_results(catalogue, image_uuids):
    """Delete these results in one transaction, with the uploads of the same file in
    the same task; a task left with no result goes too (as :func:`delete_task` does).
    Returns ``(sha256s, tasks deleted)``: the files they pointed at, for the image store
    to delete those no other result or upload still shares."""
    with catalogue.write() as conn:
        rows = conn.execute(
            "SELECT task_uuid, sha256 FROM results WHERE image_uuid IN"
            " (SELECT value FROM json_each(?))", (json.dumps(image_uuids),)).fetchall()
        conn.execute("DELETE FROM results WHERE image_uuid IN (SELECT value FROM json_each(?))",
                     (json.dumps(image_uuids),))
        for task_uuid, sha256 in rows:
            if sha256:
                conn.execute("DELETE FROM uploads WHERE task_uuid = ? AND sha256 = ?",
                             (task_uuid, sha256))
        emptied = [task for task in dict.fromkeys(t for t, _ in rows) if conn.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM results WHERE task_uuid = ?)",
            (task,)).fetchone()[0]]
        hashes = {sha for _, sha in rows if sha}
        for task_uuid in emptied:
            hashes.update(_drop_task(conn, task_uuid))
    return sorted(hashes), emptied
