-- Shipped: never edit this file; a change of schema is a new version.
-- Version 27: saved searches, and the archive's budgets kept in the catalogue.
--
-- saved_searches: a gallery query and its filters under a name (the query string the
-- gallery reads, archive/saved.py), listed in the gallery's toolbar.
-- budget_limits: the daily and monthly limits every process reads (the server, the
-- worker, `runware-archive submit` from another shell), set from /costs, the CLI
-- (`runware-archive budget`) or the RUNWARE_ARCHIVE_BUDGET_* variables. A NULL limit is
-- one that was cleared. env_value is the variable's text when it last set the limit: a
-- process applies the variable only when it differs, so a change made in the page or the
-- CLI afterwards is not undone by the next start with the same environment.

CREATE TABLE saved_searches (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, query TEXT NOT NULL, created_at TEXT NOT NULL);

CREATE TABLE budget_limits (period TEXT PRIMARY KEY CHECK (period IN ('daily', 'monthly')), limit_usd REAL CHECK (limit_usd IS NULL OR limit_usd >= 0), source TEXT NOT NULL, set_at TEXT NOT NULL, env_value TEXT);
