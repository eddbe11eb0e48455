-- Shipped: never edit this file; a change of schema is a new version.
-- Version 2: the cost rollup and its triggers, budget threshold crossings, cost indexes.
--
-- The cost rollup: results summed per 15-minute UTC bucket x model x size x label x
-- provider. Every UTC offset in use today is a multiple of 15 minutes, so a local day,
-- week or month in any time zone is a whole number of buckets and is folded from this
-- small table instead of the result rows. Triggers keep it exact inside the writing
-- transaction, whatever path writes results. The bucket is read from the text truncated
-- to whole seconds: SQLite's julian-day arithmetic rounds 23:59:59.9999995 up into the
-- next day. A result without a cost counts its task's estimate shared by its images.

CREATE TABLE cost_rollup (bucket INTEGER NOT NULL, model TEXT NOT NULL, size TEXT NOT NULL, label TEXT NOT NULL, provider TEXT NOT NULL, cost REAL NOT NULL, results INTEGER NOT NULL, missing INTEGER NOT NULL, missing_estimate REAL NOT NULL, PRIMARY KEY (bucket, model, size, label, provider)) WITHOUT ROWID;

-- The results stored before this version.
INSERT INTO cost_rollup (bucket, model, size, label, provider, cost, results, missing,
                         missing_estimate)
SELECT CAST(strftime('%s', substr(r.received_at, 1, 19)) AS INTEGER) / 900 * 900, t.model,
       coalesce(t.width || 'x' || t.height, ''), coalesce(t.label, ''), t.provider,
       total(r.cost), count(*), total(r.cost IS NULL),
       total(CASE WHEN r.cost IS NULL THEN coalesce(t.estimate / t.number_results, 0) ELSE 0 END)
FROM results r JOIN tasks t ON t.task_uuid = r.task_uuid WHERE 1
GROUP BY 1, 2, 3, 4, 5
ON CONFLICT (bucket, model, size, label, provider) DO UPDATE SET
  cost = cost + excluded.cost, results = results + excluded.results,
  missing = missing + excluded.missing,
  missing_estimate = missing_estimate + excluded.missing_estimate;

-- Each result is added to its bucket and key; a delete or an update takes the old row
-- away first. A task's change of key or estimate moves all its results.
CREATE TRIGGER results_cost_ai AFTER INSERT ON results BEGIN
          INSERT INTO cost_rollup (bucket, model, size, label, provider, cost, results, missing, missing_estimate) SELECT CAST(strftime('%s', substr(new.received_at, 1, 19)) AS INTEGER) / 900 * 900, t.model, coalesce(t.width || 'x' || t.height, ''), coalesce(t.label, ''), t.provider, coalesce(new.cost, 0), 1, (new.cost IS NULL), (CASE WHEN new.cost IS NULL THEN coalesce(t.estimate / t.number_results, 0) ELSE 0 END) FROM tasks t WHERE t.task_uuid = new.task_uuid ON CONFLICT (bucket, model, size, label, provider) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
        END;

CREATE TRIGGER results_cost_ad AFTER DELETE ON results BEGIN
          INSERT INTO cost_rollup (bucket, model, size, label, provider, cost, results, missing, missing_estimate) SELECT CAST(strftime('%s', substr(old.received_at, 1, 19)) AS INTEGER) / 900 * 900, t.model, coalesce(t.width || 'x' || t.height, ''), coalesce(t.label, ''), t.provider, -coalesce(old.cost, 0), -1, -(old.cost IS NULL), -(CASE WHEN old.cost IS NULL THEN coalesce(t.estimate / t.number_results, 0) ELSE 0 END) FROM tasks t WHERE t.task_uuid = old.task_uuid ON CONFLICT (bucket, model, size, label, provider) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
        END;

CREATE TRIGGER results_cost_au AFTER UPDATE OF cost, received_at, task_uuid
        ON results BEGIN
          INSERT INTO cost_rollup (bucket, model, size, label, provider, cost, results, missing, missing_estimate) SELECT CAST(strftime('%s', substr(old.received_at, 1, 19)) AS INTEGER) / 900 * 900, t.model, coalesce(t.width || 'x' || t.height, ''), coalesce(t.label, ''), t.provider, -coalesce(old.cost, 0), -1, -(old.cost IS NULL), -(CASE WHEN old.cost IS NULL THEN coalesce(t.estimate / t.number_results, 0) ELSE 0 END) FROM tasks t WHERE t.task_uuid = old.task_uuid ON CONFLICT (bucket, model, size, label, provider) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
          INSERT INTO cost_rollup (bucket, model, size, label, provider, cost, results, missing, missing_estimate) SELECT CAST(strftime('%s', substr(new.received_at, 1, 19)) AS INTEGER) / 900 * 900, t.model, coalesce(t.width || 'x' || t.height, ''), coalesce(t.label, ''), t.provider, coalesce(new.cost, 0), 1, (new.cost IS NULL), (CASE WHEN new.cost IS NULL THEN coalesce(t.estimate / t.number_results, 0) ELSE 0 END) FROM tasks t WHERE t.task_uuid = new.task_uuid ON CONFLICT (bucket, model, size, label, provider) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
        END;

CREATE TRIGGER tasks_cost_au AFTER UPDATE OF model, width, height, label, provider,
          estimate, number_results ON tasks BEGIN
          INSERT INTO cost_rollup (bucket, model, size, label, provider, cost, results, missing, missing_estimate) SELECT CAST(strftime('%s', substr(r.received_at, 1, 19)) AS INTEGER) / 900 * 900, old.model, coalesce(old.width || 'x' || old.height, ''), coalesce(old.label, ''), old.provider, -total(r.cost), -count(*), -total(r.cost IS NULL), -total(CASE WHEN r.cost IS NULL THEN coalesce(old.estimate / old.number_results, 0) ELSE 0 END) FROM results r WHERE r.task_uuid = old.task_uuid GROUP BY 1 ON CONFLICT (bucket, model, size, label, provider) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
          INSERT INTO cost_rollup (bucket, model, size, label, provider, cost, results, missing, missing_estimate) SELECT CAST(strftime('%s', substr(r.received_at, 1, 19)) AS INTEGER) / 900 * 900, new.model, coalesce(new.width || 'x' || new.height, ''), coalesce(new.label, ''), new.provider, total(r.cost), count(*), total(r.cost IS NULL), total(CASE WHEN r.cost IS NULL THEN coalesce(new.estimate / new.number_results, 0) ELSE 0 END) FROM results r WHERE r.task_uuid = new.task_uuid GROUP BY 1 ON CONFLICT (bucket, model, size, label, provider) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
        END;

-- Each budget threshold crossed, once per period, and whether its alert went out.
CREATE TABLE budget_crossings (period TEXT NOT NULL, period_key TEXT NOT NULL, threshold REAL NOT NULL, limit_usd REAL NOT NULL, crossed_at TEXT NOT NULL, committed REAL NOT NULL, alert_sent_at TEXT, alert_error TEXT, PRIMARY KEY (period, period_key, threshold, limit_usd));

CREATE INDEX results_received_at ON results (received_at);

CREATE INDEX results_keepers ON results (task_uuid) WHERE starred = 1;

CREATE INDEX tasks_cost ON tasks (cost);

