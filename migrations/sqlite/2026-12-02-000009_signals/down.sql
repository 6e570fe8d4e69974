ALTER TABLE partner_controls DROP COLUMN breaker_open_until;
DROP TABLE processes;
DROP TABLE signals;
