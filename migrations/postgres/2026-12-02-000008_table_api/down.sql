DROP TABLE refresh_tokens;
ALTER TABLE credentials DROP COLUMN kind;
DROP INDEX tickets_created_at;
DROP INDEX tickets_sys_id;
ALTER TABLE tickets DROP COLUMN sys_id;
