-- Shipped: never edit this file; a change of schema is a new version.
-- Version 26: the search index also holds each task's label; seeds and labels get indexes.
--
-- The gallery's search (archive/search.py) looks in the prompt, the negative prompt (in
-- the index since version 1, never searched until now) and the label, and a bare number
-- also finds the images of that seed. FTS5 cannot add a column to an index, so tasks_fts
-- is made again with the label and rebuilt from tasks, with version 11's prefix indexes;
-- its triggers now follow the label too (a relabelled task is re-indexed). The rebuild
-- reads every task once: bench/search.py measures it at a million results.
-- results_seed lets a seed lead the search; tasks_label lets the gallery list the labels
-- in use by skipping along it (archive.browse.labels) and filter by one.

DROP TRIGGER tasks_fts_ai;

DROP TRIGGER tasks_fts_ad;

DROP TRIGGER tasks_fts_au;

DROP TABLE tasks_fts;

CREATE VIRTUAL TABLE tasks_fts USING FTS5 ("positive_prompt", "negative_prompt", "label", tokenize='unicode61', content="tasks", prefix='1 2 3 4 5 6 7 8 9 10 11 12');

CREATE TRIGGER tasks_fts_ai AFTER INSERT ON tasks BEGIN
          INSERT INTO tasks_fts (rowid, positive_prompt, negative_prompt, label)
          VALUES (new.id, new.positive_prompt, new.negative_prompt, new.label);
        END;

CREATE TRIGGER tasks_fts_ad AFTER DELETE ON tasks BEGIN
          INSERT INTO tasks_fts (tasks_fts, rowid, positive_prompt, negative_prompt, label)
          VALUES ('delete', old.id, old.positive_prompt, old.negative_prompt, old.label);
        END;

CREATE TRIGGER tasks_fts_au AFTER UPDATE OF positive_prompt, negative_prompt, label
        ON tasks BEGIN
          INSERT INTO tasks_fts (tasks_fts, rowid, positive_prompt, negative_prompt, label)
          VALUES ('delete', old.id, old.positive_prompt, old.negative_prompt, old.label);
          INSERT INTO tasks_fts (rowid, positive_prompt, negative_prompt, label)
          VALUES (new.id, new.positive_prompt, new.negative_prompt, new.label);
        END;

INSERT INTO tasks_fts (tasks_fts) VALUES ('rebuild');

CREATE INDEX results_seed ON results (seed);

CREATE INDEX tasks_label ON tasks (label);
