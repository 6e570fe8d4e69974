-- 2026-11-22-000004 gained its `DROP INDEX outbox_open` after it had landed, so a database
-- migrated before that edit still has the index (and pays a write for it on every outbox
-- insert and state change). This brings every database to the same schema.
DROP INDEX IF EXISTS outbox_open;
