-- Shipped: never edit this file; a change of schema is a new version.
-- Version 13: what Runware's own SDKs taught us about deliveries.
--
-- task_errors.image_uuid: a failed generation is an item of its own, often naming the
--   image that failed; such errors are one per image, however often they arrive.
-- deliveries.content_type: Runware does not document its webhook headers, so every
--   body is parsed as JSON whatever it says, and what it said is kept here.
-- The status 'lost': a task whose results never came and that Runware no longer knows
--   once the reconcile window closes. It is finished, so its estimate leaves the
--   in-flight sum.

ALTER TABLE task_errors ADD COLUMN image_uuid TEXT;

ALTER TABLE deliveries ADD COLUMN content_type TEXT;

DROP INDEX tasks_in_flight;

CREATE INDEX tasks_in_flight ON tasks (status, estimate, cost) WHERE status NOT IN ('complete', 'error', 'lost');

