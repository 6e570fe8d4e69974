ALTER TABLE processes DROP COLUMN contracts_sha256;
ALTER TABLE processes DROP COLUMN contracts_heard;
DELETE FROM signals WHERE name = 'contracts';
