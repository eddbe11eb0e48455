-- Shipped: never edit this file; a change of schema is a new version.
-- Version 10: what the gallery's line "N images in M tasks · $X" reads, without a scan.
--
-- Everything: the number of tasks from task_totals (a counter kept by insert and delete
-- triggers on tasks, which a delivery never fires), images and cost from version 8's
-- cost_totals. Filtered views count at most history.SUMMARY_CAP tasks along the
-- gallery's own walk, so version 4's covering index tasks_gallery_totals is read by
-- nothing; it was rewritten on every delivery (it holds results_received and cost) and
-- goes. Starred results are counted exactly from a partial index that now holds their
-- cost too (a star is a click, never a delivery: new results are unstarred).

CREATE TABLE task_totals (id INTEGER PRIMARY KEY CHECK (id = 1), tasks INTEGER NOT NULL);

-- The tasks stored before this version.
INSERT INTO task_totals VALUES (1, (SELECT count(*) FROM tasks));

CREATE TRIGGER tasks_count_ai AFTER INSERT ON tasks BEGIN
          UPDATE task_totals SET tasks = tasks + 1 WHERE id = 1;
        END;

CREATE TRIGGER tasks_count_ad AFTER DELETE ON tasks BEGIN
          UPDATE task_totals SET tasks = tasks - 1 WHERE id = 1;
        END;

DROP INDEX tasks_gallery_totals;

DROP INDEX results_keepers;

CREATE INDEX results_starred ON results (task_uuid, cost) WHERE starred = 1;

