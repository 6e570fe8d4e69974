-- Nothing to restore: before this migration the index existed only on databases migrated
-- before 2026-11-22-000004 was edited, and its own down migration recreates it.
SELECT 1;
