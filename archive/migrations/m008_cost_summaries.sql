-- Shipped: never edit this file; a change of schema is a new version.
-- Version 8: cost_totals (per model, size, label and provider, all time), cost_timeline
-- (per 15-minute UTC bucket) and cost_days (per UTC day, keyed by its midnight, and
-- model, size, label and provider), folded from cost_rollup and kept by its triggers.
--
-- What the dashboard showed was folded from every cost_rollup row (300,000 a year at a
-- million results) on each request. These coarser views are kept by triggers on
-- cost_rollup itself, so they are exact functions of it whatever path wrote it (results,
-- relabelled tasks), and a result insert pays three more small upserts and no second
-- look-up of its task. A sum over any time range is then whole days plus two edges of at
-- most twelve hours of buckets (archive/timeline.py), exact in every time zone.
--
-- The rollup's upsert sets only its sums, so only cost_rollup_au runs for it (a trigger
-- costs a few microseconds even when its WHEN is false).

CREATE TABLE cost_totals (model TEXT NOT NULL, size TEXT NOT NULL, label TEXT NOT NULL, provider TEXT NOT NULL, cost REAL NOT NULL, results INTEGER NOT NULL, missing INTEGER NOT NULL, missing_estimate REAL NOT NULL, PRIMARY KEY (model, size, label, provider)) WITHOUT ROWID;

CREATE TABLE cost_timeline (bucket INTEGER PRIMARY KEY, cost REAL NOT NULL, results INTEGER NOT NULL, missing INTEGER NOT NULL, missing_estimate REAL NOT NULL);

CREATE TABLE cost_days (day INTEGER NOT NULL, model TEXT NOT NULL, size TEXT NOT NULL, label TEXT NOT NULL, provider TEXT NOT NULL, cost REAL NOT NULL, results INTEGER NOT NULL, missing INTEGER NOT NULL, missing_estimate REAL NOT NULL, PRIMARY KEY (day, model, size, label, provider)) WITHOUT ROWID;

-- The rollup as it stands, folded three ways.
INSERT INTO cost_totals SELECT model, size, label, provider, total(cost), total(results),
  total(missing), total(missing_estimate)
FROM cost_rollup GROUP BY model, size, label, provider;

INSERT INTO cost_timeline SELECT bucket, total(cost), total(results), total(missing),
  total(missing_estimate)
FROM cost_rollup GROUP BY bucket;

INSERT INTO cost_days SELECT bucket - bucket % 86400, model, size, label, provider,
  total(cost), total(results), total(missing), total(missing_estimate)
FROM cost_rollup GROUP BY bucket - bucket % 86400, model, size, label, provider;

-- A new rollup row adds itself to the three; a change of its sums adds the difference;
-- a change of its key (a relabelled task) moves it; a delete takes it away.
CREATE TRIGGER cost_rollup_ai AFTER INSERT ON cost_rollup BEGIN
          INSERT INTO cost_totals (model, size, label, provider, cost, results, missing, missing_estimate) VALUES (new.model, new.size, new.label, new.provider, (new.cost), (new.results), (new.missing), (new.missing_estimate)) ON CONFLICT (model, size, label, provider) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
INSERT INTO cost_timeline (bucket, cost, results, missing, missing_estimate) VALUES (new.bucket, (new.cost), (new.results), (new.missing), (new.missing_estimate)) ON CONFLICT (bucket) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
INSERT INTO cost_days (day, model, size, label, provider, cost, results, missing, missing_estimate) VALUES (new.bucket - new.bucket % 86400, new.model, new.size, new.label, new.provider, (new.cost), (new.results), (new.missing), (new.missing_estimate)) ON CONFLICT (day, model, size, label, provider) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
        END;

CREATE TRIGGER cost_rollup_au AFTER UPDATE OF cost, results, missing, missing_estimate ON cost_rollup
        WHEN old.bucket IS new.bucket AND old.model IS new.model AND old.size IS new.size AND old.label IS new.label AND old.provider IS new.provider BEGIN
          INSERT INTO cost_totals (model, size, label, provider, cost, results, missing, missing_estimate) VALUES (new.model, new.size, new.label, new.provider, (new.cost - old.cost), (new.results - old.results), (new.missing - old.missing), (new.missing_estimate - old.missing_estimate)) ON CONFLICT (model, size, label, provider) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
INSERT INTO cost_timeline (bucket, cost, results, missing, missing_estimate) VALUES (new.bucket, (new.cost - old.cost), (new.results - old.results), (new.missing - old.missing), (new.missing_estimate - old.missing_estimate)) ON CONFLICT (bucket) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
INSERT INTO cost_days (day, model, size, label, provider, cost, results, missing, missing_estimate) VALUES (new.bucket - new.bucket % 86400, new.model, new.size, new.label, new.provider, (new.cost - old.cost), (new.results - old.results), (new.missing - old.missing), (new.missing_estimate - old.missing_estimate)) ON CONFLICT (day, model, size, label, provider) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
        END;

CREATE TRIGGER cost_rollup_au_keys AFTER UPDATE OF bucket, model, size, label, provider ON cost_rollup
        WHEN NOT (old.bucket IS new.bucket AND old.model IS new.model AND old.size IS new.size AND old.label IS new.label AND old.provider IS new.provider) BEGIN
          INSERT INTO cost_totals (model, size, label, provider, cost, results, missing, missing_estimate) VALUES (old.model, old.size, old.label, old.provider, -(old.cost), -(old.results), -(old.missing), -(old.missing_estimate)) ON CONFLICT (model, size, label, provider) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
INSERT INTO cost_timeline (bucket, cost, results, missing, missing_estimate) VALUES (old.bucket, -(old.cost), -(old.results), -(old.missing), -(old.missing_estimate)) ON CONFLICT (bucket) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
INSERT INTO cost_days (day, model, size, label, provider, cost, results, missing, missing_estimate) VALUES (old.bucket - old.bucket % 86400, old.model, old.size, old.label, old.provider, -(old.cost), -(old.results), -(old.missing), -(old.missing_estimate)) ON CONFLICT (day, model, size, label, provider) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
          INSERT INTO cost_totals (model, size, label, provider, cost, results, missing, missing_estimate) VALUES (new.model, new.size, new.label, new.provider, (new.cost), (new.results), (new.missing), (new.missing_estimate)) ON CONFLICT (model, size, label, provider) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
INSERT INTO cost_timeline (bucket, cost, results, missing, missing_estimate) VALUES (new.bucket, (new.cost), (new.results), (new.missing), (new.missing_estimate)) ON CONFLICT (bucket) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
INSERT INTO cost_days (day, model, size, label, provider, cost, results, missing, missing_estimate) VALUES (new.bucket - new.bucket % 86400, new.model, new.size, new.label, new.provider, (new.cost), (new.results), (new.missing), (new.missing_estimate)) ON CONFLICT (day, model, size, label, provider) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
        END;

CREATE TRIGGER cost_rollup_ad AFTER DELETE ON cost_rollup BEGIN
          INSERT INTO cost_totals (model, size, label, provider, cost, results, missing, missing_estimate) VALUES (old.model, old.size, old.label, old.provider, -(old.cost), -(old.results), -(old.missing), -(old.missing_estimate)) ON CONFLICT (model, size, label, provider) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
INSERT INTO cost_timeline (bucket, cost, results, missing, missing_estimate) VALUES (old.bucket, -(old.cost), -(old.results), -(old.missing), -(old.missing_estimate)) ON CONFLICT (bucket) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
INSERT INTO cost_days (day, model, size, label, provider, cost, results, missing, missing_estimate) VALUES (old.bucket - old.bucket % 86400, old.model, old.size, old.label, old.provider, -(old.cost), -(old.results), -(old.missing), -(old.missing_estimate)) ON CONFLICT (day, model, size, label, provider) DO UPDATE SET cost = cost + excluded.cost, results = results + excluded.results, missing = missing + excluded.missing, missing_estimate = missing_estimate + excluded.missing_estimate;
        END;

