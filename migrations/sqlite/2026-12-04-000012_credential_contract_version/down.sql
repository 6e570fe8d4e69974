ALTER TABLE access_tokens DROP COLUMN contract_major;
ALTER TABLE credentials DROP COLUMN contract_major;
