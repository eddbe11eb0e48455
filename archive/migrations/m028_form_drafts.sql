-- Shipped: never edit this file; a change of schema is a new version.
-- Version 28: the submit form's drafts (archive/drafts.py).
--
-- form_drafts: what a POST of the form /new that sent nothing left to show (its values,
--   errors by field, extra LoRA rows), under a random id the redirect names
--   (/new?draft=<id>), so the browser ends on a GET that a reload repeats harmlessly.
--   Kept a day, at most 1,000 (archive/drafts.py prunes on each save).

CREATE TABLE form_drafts (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, body TEXT NOT NULL);

CREATE INDEX idx_form_drafts_created_at ON form_drafts (created_at);
