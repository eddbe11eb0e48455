-- Shipped: never edit this file; a change of schema is a new version.
-- Version 14: login state every worker shares and a restart keeps (archive.sessions).
--
-- sessions: one row per login, keyed by the SHA-256 of the cookie's random id (WITHOUT
--   ROWID: a request's check is one primary-key lookup); logging out deletes it, and
--   epoch ties it to the password it was made under.
-- login_failures: one row per wrong password, by client address and time, pruned to the
--   lockout window.

CREATE TABLE sessions (id TEXT PRIMARY KEY, epoch TEXT NOT NULL, created_at REAL NOT NULL, last_seen REAL NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID;

CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE login_failures (id INTEGER PRIMARY KEY, address TEXT NOT NULL, failed_at REAL NOT NULL);

CREATE INDEX login_failures_address ON login_failures (address, failed_at);

CREATE INDEX login_failures_time ON login_failures (failed_at);

