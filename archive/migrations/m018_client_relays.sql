-- Shipped: never edit this file; a change of schema is a new version.
-- Version 18: relaying a /v1 client's own webhook (archive/relay.py).
--
-- client_keys.relay_hosts: the JSON list of the scheme://host[:port] entries a key's
--   tasks may name as their webhookURL (runware-archive keys create --relay-host).
-- relay_targets: one row per task whose client asked for its results at webhook_url;
--   closed_at is set once the task has ended and all it had was queued, so the sweep
--   that queues new items skips it until the task changes again.
-- relay_queue: one row per result or failed image to relay, in the order the sweep found
--   them (their arrival order); item_key ('r:' imageUUID, 'e:' fingerprint) keeps it
--   once. A row is pending until a 2xx (delivered) or its last attempt (dead); a sender
--   claims it by claimed_until (epoch seconds), so two workers never send it at once.

ALTER TABLE client_keys ADD COLUMN relay_hosts TEXT;

CREATE TABLE relay_targets (task_uuid TEXT PRIMARY KEY, key_id INTEGER NOT NULL, webhook_url TEXT NOT NULL, created_at TEXT NOT NULL, closed_at TEXT) WITHOUT ROWID;

CREATE TABLE relay_queue (id INTEGER PRIMARY KEY, task_uuid TEXT NOT NULL, item_key TEXT NOT NULL, body TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL, claimed_until REAL, last_error TEXT, created_at TEXT NOT NULL, delivered_at TEXT, UNIQUE (task_uuid, item_key));

CREATE INDEX relay_queue_pending ON relay_queue (task_uuid, id) WHERE state = 'pending';
