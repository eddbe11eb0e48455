"""The images a bulk action of the gallery is about to touch (no Flask): their cards for
the page that asks before deleting, and the tasks a deletion would leave empty."""

import json

from archive.ordering import CARD_COLUMNS, RESULTS_FIRST


def cards_of(conn, image_uuids):
    """The gallery cards of these images (those that exist), newest first: what a bulk
    action is about to touch."""
    cur = conn.execute(f"SELECT {CARD_COLUMNS} FROM {RESULTS_FIRST}"
                       " WHERE r.image_uuid IN (SELECT value FROM json_each(?))"
                       " ORDER BY t.id DESC, r.id DESC", [json.dumps(list(image_uuids))])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def tasks_emptied(conn, image_uuids):
    """How many tasks would be left with no image if these were deleted."""
    return conn.execute(
        "WITH hit AS (SELECT task_uuid, count(*) AS n FROM results WHERE image_uuid IN"
        " (SELECT value FROM json_each(?)) GROUP BY task_uuid)"
        " SELECT count(*) FROM hit WHERE n = (SELECT count(*) FROM results x"
        " WHERE x.task_uuid = hit.task_uuid)", [json.dumps(list(image_uuids))]).fetchone()[0]
