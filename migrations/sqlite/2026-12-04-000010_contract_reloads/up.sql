-- Contract reloads reach every process on the database: `contracts` is raised by a reload
-- (HTTP, CLI) and each process then loads its contracts folder anew and records here which
-- reload it heard and the digest of the contracts it now enforces (what `ebond contracts
-- reload` waits for and shows).
INSERT INTO signals (name, generation) VALUES ('contracts', 0);
ALTER TABLE processes ADD COLUMN contracts_heard BIGINT NOT NULL DEFAULT 0;
ALTER TABLE processes ADD COLUMN contracts_sha256 TEXT NOT NULL DEFAULT '';
