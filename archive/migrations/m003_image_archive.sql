-- Shipped: never edit this file; a change of schema is a new version.
-- Version 3: uploads (the provider's PUTs to uploadEndpoint), reconcile bookkeeping on
-- tasks, and the index the fetcher's claim query walks.

CREATE TABLE "uploads" (
   "id" INTEGER PRIMARY KEY,
   "task_uuid" TEXT NOT NULL REFERENCES "tasks"("task_uuid"),
   "received_at" TEXT NOT NULL,
   "sha256" TEXT NOT NULL,
   "file_ext" TEXT NOT NULL,
   "file_size" INTEGER NOT NULL,
   "img_width" INTEGER,
   "img_height" INTEGER,
   "image_uuid" TEXT,
   "matched_by" TEXT,
   "matched_at" TEXT,
   "remote_addr" TEXT
);

CREATE UNIQUE INDEX "idx_uploads_task_uuid_sha256"
    ON "uploads" ("task_uuid", "sha256");

CREATE INDEX "idx_uploads_sha256"
    ON "uploads" ("sha256");

CREATE INDEX uploads_unmatched ON uploads (received_at) WHERE matched_at IS NULL;

ALTER TABLE "tasks" ADD COLUMN "reconciled_at" TEXT;

ALTER TABLE "tasks" ADD COLUMN "reconcile_count" INTEGER NOT NULL DEFAULT 0;

CREATE INDEX results_pending ON results (url_expires_at, received_at) WHERE archive_state = 'pending';

