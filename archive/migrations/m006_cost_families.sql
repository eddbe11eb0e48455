-- Shipped: never edit this file; a change of schema is a new version.
-- Version 6: tasks.family_root for cost per lineage family, and an index for what is in
-- flight.
--
-- A re-run's family is its original (root) task and every re-run below it. The root is
-- set when a re-run is inserted (on it, and on a parent that had none), so the costs of
-- all families are one scan of a small covering index instead of a recursive walk of the
-- whole lineage (archive/costs.py, bench/costs_scale.py). The budget check sums the
-- estimates of unfinished tasks from a partial index of them alone.

ALTER TABLE "tasks" ADD COLUMN "family_root" TEXT;

-- The families of the tasks stored before this version: every re-run under its root.
CREATE TEMP TABLE _families AS WITH RECURSIVE family(task_uuid, root) AS (
  SELECT DISTINCT p.task_uuid, p.task_uuid FROM tasks c CROSS JOIN tasks p
    ON p.task_uuid = c.parent_task_uuid
  WHERE c.parent_task_uuid IS NOT NULL AND p.parent_task_uuid IS NULL
  UNION SELECT c.task_uuid, f.root FROM family f
    JOIN tasks c ON c.parent_task_uuid = f.task_uuid)
SELECT task_uuid, root FROM family;

UPDATE tasks SET family_root = f.root FROM _families f
WHERE f.task_uuid = tasks.task_uuid;

DROP TABLE _families;

-- A new re-run joins its parent's family; a parent that had none becomes a root.
CREATE TRIGGER tasks_family_ai AFTER INSERT ON tasks
        WHEN new.parent_task_uuid IS NOT NULL BEGIN
          UPDATE tasks SET family_root = task_uuid
            WHERE task_uuid = new.parent_task_uuid AND family_root IS NULL;
          UPDATE tasks SET family_root = (SELECT family_root FROM tasks
            WHERE task_uuid = new.parent_task_uuid) WHERE id = new.id;
        END;

CREATE INDEX tasks_families ON tasks (family_root, cost, cost_missing, results_received) WHERE family_root IS NOT NULL;

CREATE INDEX tasks_in_flight ON tasks (status, estimate, cost) WHERE status NOT IN ('complete', 'error');

