-- Shipped: never edit this file; a change of schema is a new version.
-- Version 9: cost_families, each lineage family's tasks and its results' cost, results
-- without a cost, results and keepers (starred), kept by triggers, so the dashboard's
-- costliest families are ten rows of an index instead of a grouping of every re-run
-- (version 6's tasks_families) and a count of keepers per family.
--
-- A result insert (every delivery) pays one look-up of its task's family_root; the task
-- triggers run on insert, delete and re-parenting, never on a delivery's update of the
-- task (a trigger there costs each delivery more than the look-up).

CREATE TABLE cost_families (root TEXT PRIMARY KEY, tasks INTEGER NOT NULL, cost REAL NOT NULL, missing INTEGER NOT NULL, results INTEGER NOT NULL, keepers INTEGER NOT NULL) WITHOUT ROWID;

-- The families stored before this version (version 6 set their family_root).
INSERT INTO cost_families SELECT t.family_root, count(DISTINCT t.id), total(r.cost),
  total(r.cost IS NULL), count(r.id), total(r.starred)
FROM tasks t LEFT JOIN results r ON r.task_uuid = t.task_uuid
WHERE t.family_root IS NOT NULL GROUP BY t.family_root;

CREATE INDEX cost_families_by_cost ON cost_families (cost DESC, root);

CREATE TRIGGER results_families_ai AFTER INSERT ON results BEGIN
          UPDATE cost_families SET cost = cost + coalesce(new.cost, 0), missing = missing + (new.cost IS NULL), results = results + 1, keepers = keepers + new.starred WHERE root = (SELECT family_root FROM tasks WHERE task_uuid = new.task_uuid);
        END;

CREATE TRIGGER results_families_ad AFTER DELETE ON results BEGIN
          UPDATE cost_families SET cost = cost - coalesce(old.cost, 0), missing = missing - (old.cost IS NULL), results = results - 1, keepers = keepers - old.starred WHERE root = (SELECT family_root FROM tasks WHERE task_uuid = old.task_uuid);
        END;

CREATE TRIGGER results_families_au AFTER UPDATE OF cost, starred, task_uuid
        ON results BEGIN
          UPDATE cost_families SET cost = cost - coalesce(old.cost, 0), missing = missing - (old.cost IS NULL), results = results - 1, keepers = keepers - old.starred WHERE root = (SELECT family_root FROM tasks WHERE task_uuid = old.task_uuid);
          UPDATE cost_families SET cost = cost + coalesce(new.cost, 0), missing = missing + (new.cost IS NULL), results = results + 1, keepers = keepers + new.starred WHERE root = (SELECT family_root FROM tasks WHERE task_uuid = new.task_uuid);
        END;

CREATE TRIGGER tasks_families_ai AFTER INSERT ON tasks
        WHEN new.family_root IS NOT NULL BEGIN
          INSERT INTO cost_families (root, tasks, cost, missing, results, keepers) SELECT new.family_root, 1, total(r.cost), total(r.cost IS NULL), count(*), total(r.starred) FROM results r WHERE r.task_uuid = new.task_uuid ON CONFLICT (root) DO UPDATE SET tasks = tasks + excluded.tasks, cost = cost + excluded.cost, missing = missing + excluded.missing, results = results + excluded.results, keepers = keepers + excluded.keepers;
        END;

CREATE TRIGGER tasks_families_ad AFTER DELETE ON tasks
        WHEN old.family_root IS NOT NULL BEGIN
          INSERT INTO cost_families (root, tasks, cost, missing, results, keepers) SELECT old.family_root, -1, -total(r.cost), -total(r.cost IS NULL), -count(*), -total(r.starred) FROM results r WHERE r.task_uuid = old.task_uuid ON CONFLICT (root) DO UPDATE SET tasks = tasks + excluded.tasks, cost = cost + excluded.cost, missing = missing + excluded.missing, results = results + excluded.results, keepers = keepers + excluded.keepers;
        END;

CREATE TRIGGER tasks_families_left AFTER UPDATE OF family_root ON tasks
        WHEN old.family_root IS NOT NULL AND old.family_root IS NOT new.family_root BEGIN
          INSERT INTO cost_families (root, tasks, cost, missing, results, keepers) SELECT old.family_root, -1, -total(r.cost), -total(r.cost IS NULL), -count(*), -total(r.starred) FROM results r WHERE r.task_uuid = old.task_uuid ON CONFLICT (root) DO UPDATE SET tasks = tasks + excluded.tasks, cost = cost + excluded.cost, missing = missing + excluded.missing, results = results + excluded.results, keepers = keepers + excluded.keepers;
        END;

CREATE TRIGGER tasks_families_joined AFTER UPDATE OF family_root ON tasks
        WHEN new.family_root IS NOT NULL AND old.family_root IS NOT new.family_root BEGIN
          INSERT INTO cost_families (root, tasks, cost, missing, results, keepers) SELECT new.family_root, 1, total(r.cost), total(r.cost IS NULL), count(*), total(r.starred) FROM results r WHERE r.task_uuid = new.task_uuid ON CONFLICT (root) DO UPDATE SET tasks = tasks + excluded.tasks, cost = cost + excluded.cost, missing = missing + excluded.missing, results = results + excluded.results, keepers = keepers + excluded.keepers;
        END;

