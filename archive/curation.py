"""What a user does to their archive besides browsing it: star an image, delete a task
with its results and uploads (the files no other result shares go from the image store
afterwards: :meth:`archive.images.ImageStore.delete_unreferenced`)."""


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
        hashes = [row[0] for row in conn.execute(
            "SELECT sha256 FROM results WHERE task_uuid = ? AND sha256 IS NOT NULL"
            " UNION SELECT sha256 FROM uploads WHERE task_uuid = ?", (task_uuid, task_uuid))]
        conn.execute("UPDATE tasks SET parent_task_uuid = NULL WHERE parent_task_uuid = ?",
                     (task_uuid,))
        conn.execute("DELETE FROM uploads WHERE task_uuid = ?", (task_uuid,))
        conn.execute("DELETE FROM results WHERE task_uuid = ?", (task_uuid,))
        conn.execute("DELETE FROM tasks WHERE task_uuid = ?", (task_uuid,))
    return hashes
