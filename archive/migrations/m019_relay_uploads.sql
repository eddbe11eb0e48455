-- Shipped: never edit this file; a change of schema is a new version.
-- Version 19: a /v1 client's own uploadEndpoint (archive/relay.py).
--
-- relay_targets.upload_url: where each archived image of the task is PUT, before its
--   result is POSTed to webhook_url ('' when the client named no webhook, only this).
--   Its rows in relay_queue have item_key 'u:' imageUUID.

ALTER TABLE relay_targets ADD COLUMN upload_url TEXT;
