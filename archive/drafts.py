"""The submit form's drafts (no Flask): what a POST of ``/new`` that sent nothing (a
refusal, a preview, one more LoRA row) has to show, kept so that the answer can be a
redirect to a GET (post-redirect-get) and a reload never posts the form again.

A draft is a JSON object under a random id, read back by that id only; it lives
:data:`LIFETIME_HOURS` and at most :data:`MAX_DRAFTS` are kept, so a stream of posts
cannot fill the disk. Values are capped at :data:`MAX_VALUE` characters each (the form's
longest field, a prompt, may be 3,000).
"""

import json
import secrets
from datetime import datetime, timedelta, timezone

from archive.records import utcnow

LIFETIME_HOURS = 24
MAX_DRAFTS = 1000
MAX_VALUE = 20_000


def _cutoff():
    moment = datetime.now(timezone.utc) - timedelta(hours=LIFETIME_HOURS)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def save(catalogue, body):
    """Keep ``body`` (a JSON-able dict) as a new draft; returns its id. Drafts past their
    lifetime, and the oldest beyond :data:`MAX_DRAFTS`, go in the same transaction."""
    draft_id = secrets.token_urlsafe(16)
    text = json.dumps(body, ensure_ascii=False)
    with catalogue.write() as conn:
        conn.execute("DELETE FROM form_drafts WHERE created_at < ?", (_cutoff(),))
        conn.execute("DELETE FROM form_drafts WHERE id IN (SELECT id FROM form_drafts"
                     " ORDER BY created_at DESC LIMIT -1 OFFSET ?)", (MAX_DRAFTS - 1,))
        conn.execute("INSERT INTO form_drafts (id, created_at, body) VALUES (?, ?, ?)",
                     (draft_id, utcnow(), text))
    return draft_id


def load(conn, draft_id):
    """The draft's body, or None when there is none (unknown, or past its lifetime)."""
    row = conn.execute("SELECT body FROM form_drafts WHERE id = ? AND created_at >= ?",
                       (draft_id, _cutoff())).fetchone()
    return json.loads(row[0]) if row else None
