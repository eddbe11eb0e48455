-- Shipped: never edit this file; a change of schema is a new version.
-- Version 11: tasks_fts rebuilt with prefix indexes of 1 to 12 characters.
--
-- A bare search word is a prefix query (light*), and without a prefix index FTS5 merges
-- the doclists of every term it begins (light, lighthouse, ...) in memory before it
-- returns the first row: 10 ms at a million results for one common word, and each word
-- of a query pays it again. With the index, a prefix is read like a term, newest first,
-- and stops at the page. The index is about six times as large and costs each task
-- insert (never a delivery) more terms to write; version 1's triggers keep it unchanged.
-- Rebuilding takes about 10 s at a million results (hence MIGRATION_WAIT_MS).

DROP TABLE tasks_fts;

-- content="tasks" spelled as sqlite-utils' enable_fts() spells it, so sqlite-utils
-- still finds the index (Table.detect_fts).
CREATE VIRTUAL TABLE tasks_fts USING FTS5 ("positive_prompt", "negative_prompt", tokenize='unicode61', content="tasks", prefix='1 2 3 4 5 6 7 8 9 10 11 12');

-- Index the prompts of the tasks stored before this version.
INSERT INTO tasks_fts (tasks_fts) VALUES ('rebuild');
