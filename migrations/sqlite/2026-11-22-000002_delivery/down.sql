DROP TABLE partner_controls;
DROP TABLE delivery_attempts;
DROP INDEX outbox_delivered_at;
DROP INDEX outbox_open;
ALTER TABLE outbox DROP COLUMN delivered_at;
ALTER TABLE outbox DROP COLUMN last_response;
ALTER TABLE outbox DROP COLUMN last_status;
ALTER TABLE outbox DROP COLUMN lease_owner;
