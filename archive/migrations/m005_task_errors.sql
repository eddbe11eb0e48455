-- Shipped: never edit this file; a change of schema is a new version.
-- Version 5: error items, deduplicated. They carry no imageUUID, so a repeated error
-- webhook is known by the fingerprint of its content (the sandbox found the double
-- count).

CREATE TABLE "task_errors" (
   "task_uuid" TEXT REFERENCES "tasks"("task_uuid"),
   "fingerprint" TEXT,
   "code" TEXT,
   "message" TEXT,
   "received_at" TEXT NOT NULL,
   PRIMARY KEY ("task_uuid", "fingerprint")
);

