-- Shipped: never edit this file; a change of schema is a new version.
-- Version 4: the gallery's indexes and each image's perceptual hash.
--
-- The gallery walks tasks newest first through an index per filter (model, provider,
-- width and height; status and created_at exist), and counts what a filter selects from
-- one narrow covering index instead of the wide task rows; see archive/history.py and
-- bench/history.py. results.dhash caches the 64-bit difference hash of
-- archive/verdict.py (16 hex digits), computed on first use.

ALTER TABLE "results" ADD COLUMN "dhash" TEXT;

CREATE INDEX tasks_model ON tasks (model);

CREATE INDEX tasks_provider ON tasks (provider);

CREATE INDEX tasks_size ON tasks (width, height);

CREATE INDEX tasks_gallery_totals ON tasks (provider, status, model, width, height, created_at, results_received, cost);

