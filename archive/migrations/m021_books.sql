-- Shipped: never edit this file; a change of schema is a new version.
-- Version 21: Runware's own books beside ours (archive/books.py).
--
-- books_days: one row per local date (in books_account.timezone) as the last books pass
--   found it: our total (the costs of the results of the tasks submitted that day) and
--   the day's estimates, Runware's total (NULL: Runware did not say) and the part of it
--   spent with the archive's own API key (NULL: not known), and the taskUUIDs (JSON
--   lists, at most 100 each) of the day's tasks with results still missing and of those
--   recovered through getTaskDetails.
-- books_account: the one row of the last pass: the balance getDetails gave, the trailing
--   7-day spend, the days it lasts at that pace, what went wrong asking, when.
-- books_alerts: each alert raised once (a day's difference past the threshold, a balance
--   under its floor), with how its POST went, as budget_crossings does for budgets.

CREATE TABLE books_days (date TEXT PRIMARY KEY, archive REAL NOT NULL, estimate REAL NOT NULL, runware REAL, own_key REAL, missing TEXT NOT NULL, missing_estimate REAL NOT NULL, recovered TEXT NOT NULL, checked_at TEXT NOT NULL) WITHOUT ROWID;

CREATE TABLE books_account (id INTEGER PRIMARY KEY CHECK (id = 1), timezone TEXT NOT NULL, balance REAL, currency TEXT, burn_7_days REAL, runway_days REAL, problem TEXT, checked_at TEXT NOT NULL);

CREATE TABLE books_alerts (kind TEXT NOT NULL, alert_key TEXT NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL, alert_sent_at TEXT, alert_error TEXT, PRIMARY KEY (kind, alert_key)) WITHOUT ROWID;
