-- Shipped: never edit this file; a change of schema is a new version.
-- Version 17: what each client key's tasks cost, per 15-minute UTC bucket, kept by
-- triggers, so a key's budget check (archive/keys.py committed, inside the admission's
-- write transaction) reads a few hundred rows instead of joining every task and result of
-- the key: at 50,000 tasks on one key that join took 0.7 s with the write lock held.
--
-- key_costs: per key and bucket (epoch second, a multiple of 900), the cost of the
--   results received in it, a result without a cost at its task's estimate per image (the
--   budgets' rule). Every UTC offset in use is a multiple of 15 minutes, so a local day or
--   month is a whole number of buckets.
-- tasks_key_in_flight: the key's unfinished tasks, the other half of the check; literal
--   states, as in tasks_in_flight (m006), so SQLite can use it.

CREATE TABLE key_costs (key_id INTEGER NOT NULL, bucket INTEGER NOT NULL, cost REAL NOT NULL, PRIMARY KEY (key_id, bucket)) WITHOUT ROWID;

CREATE INDEX tasks_key_in_flight ON tasks (key_id, estimate, cost) WHERE key_id IS NOT NULL AND status NOT IN ('complete', 'error', 'lost');

-- The results received before this version.
INSERT INTO key_costs SELECT t.key_id, CAST(strftime('%s', substr(r.received_at, 1, 19)) AS INTEGER) / 900 * 900, total(coalesce(r.cost, t.estimate / t.number_results, 0))
FROM results r JOIN tasks t ON t.task_uuid = r.task_uuid WHERE t.key_id IS NOT NULL GROUP BY 1, 2;

-- A result adds its cost to its bucket; a change takes the old one away and adds the new;
-- a deletion takes it away. A task's key never changes once it is recorded.
CREATE TRIGGER results_key_cost_ai AFTER INSERT ON results BEGIN
  INSERT INTO key_costs (key_id, bucket, cost) SELECT t.key_id, CAST(strftime('%s', substr(new.received_at, 1, 19)) AS INTEGER) / 900 * 900, coalesce(new.cost, t.estimate / t.number_results, 0) FROM tasks t WHERE t.task_uuid = new.task_uuid AND t.key_id IS NOT NULL ON CONFLICT (key_id, bucket) DO UPDATE SET cost = cost + excluded.cost;
END;

CREATE TRIGGER results_key_cost_au AFTER UPDATE OF cost, received_at, task_uuid ON results BEGIN
  INSERT INTO key_costs (key_id, bucket, cost) SELECT t.key_id, CAST(strftime('%s', substr(old.received_at, 1, 19)) AS INTEGER) / 900 * 900, -coalesce(old.cost, t.estimate / t.number_results, 0) FROM tasks t WHERE t.task_uuid = old.task_uuid AND t.key_id IS NOT NULL ON CONFLICT (key_id, bucket) DO UPDATE SET cost = cost + excluded.cost;
  INSERT INTO key_costs (key_id, bucket, cost) SELECT t.key_id, CAST(strftime('%s', substr(new.received_at, 1, 19)) AS INTEGER) / 900 * 900, coalesce(new.cost, t.estimate / t.number_results, 0) FROM tasks t WHERE t.task_uuid = new.task_uuid AND t.key_id IS NOT NULL ON CONFLICT (key_id, bucket) DO UPDATE SET cost = cost + excluded.cost;
END;

CREATE TRIGGER results_key_cost_ad AFTER DELETE ON results BEGIN
  INSERT INTO key_costs (key_id, bucket, cost) SELECT t.key_id, CAST(strftime('%s', substr(old.received_at, 1, 19)) AS INTEGER) / 900 * 900, -coalesce(old.cost, t.estimate / t.number_results, 0) FROM tasks t WHERE t.task_uuid = old.task_uuid AND t.key_id IS NOT NULL ON CONFLICT (key_id, bucket) DO UPDATE SET cost = cost + excluded.cost;
END;
