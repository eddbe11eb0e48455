-- Shipped: never edit this file; a change of schema is a new version.
-- Version 7: one index fewer for every webhook to maintain. (archive_state,
-- url_expires_at) was superseded by version 3's partial results_pending; what else asked
-- by state (failed and refused images) gets a partial index that new results, all
-- pending, never touch.

DROP INDEX idx_results_archive_state_url_expires_at;

CREATE INDEX results_troubled ON results (archive_state) WHERE archive_state IN ('failed', 'refused');

