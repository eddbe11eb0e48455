-- Shipped: never edit this file; a change of schema is a new version.
-- Version 1: tasks, results, the delivery log and the prompt search index.
-- The tables and indexes are spelled as sqlite-utils' create() spelled them then.

CREATE TABLE "tasks" (
   "id" INTEGER PRIMARY KEY,
   "task_uuid" TEXT NOT NULL,
   "created_at" TEXT NOT NULL,
   "updated_at" TEXT NOT NULL,
   "model" TEXT NOT NULL,
   "positive_prompt" TEXT NOT NULL,
   "negative_prompt" TEXT,
   "width" INTEGER,
   "height" INTEGER,
   "steps" INTEGER,
   "cfg_scale" REAL,
   "scheduler" TEXT,
   "seed" INTEGER,
   "number_results" INTEGER NOT NULL,
   "output_type" TEXT,
   "output_format" TEXT,
   "delivery_method" TEXT,
   "ttl" INTEGER,
   "params" TEXT NOT NULL,
   "provider" TEXT NOT NULL,
   "status" TEXT NOT NULL,
   "parent_task_uuid" TEXT REFERENCES "tasks"("task_uuid"),
   "rerun_mode" TEXT,
   "error_code" TEXT,
   "error_message" TEXT,
   "submitted_at" TEXT,
   "acknowledged_at" TEXT,
   "completed_at" TEXT,
   "ack" TEXT,
   "results_received" INTEGER NOT NULL DEFAULT 0,
   "errors_received" INTEGER NOT NULL DEFAULT 0,
   "cost" REAL,
   "cost_missing" INTEGER NOT NULL DEFAULT 0,
   "estimate" REAL,
   "label" TEXT
);

CREATE UNIQUE INDEX "idx_tasks_task_uuid"
    ON "tasks" ("task_uuid");

CREATE INDEX "idx_tasks_parent_task_uuid"
    ON "tasks" ("parent_task_uuid");

CREATE INDEX "idx_tasks_status"
    ON "tasks" ("status");

CREATE INDEX "idx_tasks_created_at"
    ON "tasks" ("created_at");

CREATE TABLE "results" (
   "id" INTEGER PRIMARY KEY,
   "image_uuid" TEXT NOT NULL,
   "task_uuid" TEXT NOT NULL REFERENCES "tasks"("task_uuid"),
   "received_at" TEXT NOT NULL,
   "seed" INTEGER,
   "cost" REAL,
   "nsfw" INTEGER,
   "image_url" TEXT,
   "output_kind" TEXT NOT NULL,
   "url_expires_at" TEXT,
   "archive_state" TEXT NOT NULL,
   "archive_error" TEXT,
   "archive_attempts" INTEGER NOT NULL DEFAULT 0,
   "claimed_by" TEXT,
   "claimed_until" TEXT,
   "next_attempt_at" TEXT,
   "archived_at" TEXT,
   "sha256" TEXT,
   "file_ext" TEXT,
   "file_size" INTEGER,
   "img_width" INTEGER,
   "img_height" INTEGER,
   "starred" INTEGER NOT NULL DEFAULT 0,
   "raw" TEXT
);

CREATE UNIQUE INDEX "idx_results_image_uuid"
    ON "results" ("image_uuid");

CREATE INDEX "idx_results_task_uuid"
    ON "results" ("task_uuid");

CREATE INDEX "idx_results_archive_state_url_expires_at"
    ON "results" ("archive_state", "url_expires_at");

CREATE INDEX "idx_results_sha256"
    ON "results" ("sha256");

CREATE TABLE "deliveries" (
   "id" INTEGER PRIMARY KEY,
   "received_at" TEXT NOT NULL,
   "source" TEXT NOT NULL,
   "task_uuid" TEXT,
   "verdict" TEXT NOT NULL,
   "reason" TEXT,
   "status_code" INTEGER NOT NULL,
   "results_new" INTEGER,
   "results_duplicate" INTEGER,
   "errors" INTEGER,
   "body" TEXT,
   "body_size" INTEGER,
   "remote_addr" TEXT
);

CREATE INDEX "idx_deliveries_task_uuid"
    ON "deliveries" ("task_uuid");

CREATE INDEX "idx_deliveries_verdict"
    ON "deliveries" ("verdict");

-- The prompt index reads the prompts from tasks (content=); SQLite creates its shadow
-- tables tasks_fts_data, _idx, _docsize and _config with it.
CREATE VIRTUAL TABLE "tasks_fts" USING FTS5 (
    "positive_prompt", "negative_prompt",
    tokenize='unicode61',
    content="tasks"
);

-- Our own triggers, not enable_fts(create_triggers=True): that one re-indexes the
-- prompts on *every* UPDATE, and every delivery updates its task's status.
CREATE TRIGGER tasks_fts_ai AFTER INSERT ON tasks BEGIN
          INSERT INTO tasks_fts (rowid, positive_prompt, negative_prompt)
          VALUES (new.id, new.positive_prompt, new.negative_prompt);
        END;

CREATE TRIGGER tasks_fts_ad AFTER DELETE ON tasks BEGIN
          INSERT INTO tasks_fts (tasks_fts, rowid, positive_prompt, negative_prompt)
          VALUES ('delete', old.id, old.positive_prompt, old.negative_prompt);
        END;

CREATE TRIGGER tasks_fts_au AFTER UPDATE OF positive_prompt, negative_prompt
        ON tasks BEGIN
          INSERT INTO tasks_fts (tasks_fts, rowid, positive_prompt, negative_prompt)
          VALUES ('delete', old.id, old.positive_prompt, old.negative_prompt);
          INSERT INTO tasks_fts (rowid, positive_prompt, negative_prompt)
          VALUES (new.id, new.positive_prompt, new.negative_prompt);
        END;

