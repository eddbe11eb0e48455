-- Shipped: never edit this file; a change of schema is a new version.
-- Version 16: client keys for the Runware-compatible endpoint (POST /v1). Existing Runware
-- code points at the archive and sends one of these instead of a Runware key.
--
-- client_keys: one row per key. Only the SHA-256 of the secret is kept (the secret is 32
--   random bytes, so a hash is enough and a lookup by it is constant-time with respect to
--   the secret); the secret itself is shown once, at creation. Budgets are USD, NULL for
--   none; a revoked key keeps its row so its tasks keep their label and spend.
-- tasks.key_id: the key a task came in with (NULL: the archive's own form, API or CLI),
--   indexed with created_at so a key's spend and its budget check read only its tasks.

CREATE TABLE client_keys (id INTEGER PRIMARY KEY, key_hash TEXT NOT NULL UNIQUE, label TEXT NOT NULL, daily_budget REAL, monthly_budget REAL, created_at TEXT NOT NULL, revoked_at TEXT);

ALTER TABLE tasks ADD COLUMN key_id INTEGER REFERENCES client_keys (id);

CREATE INDEX tasks_key ON tasks (key_id, created_at) WHERE key_id IS NOT NULL;
