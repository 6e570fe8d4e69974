-- Signals between the processes that share this database, one counter each: `revoked` is
-- raised in the transaction that revokes a credential (every process then forgets the tokens
-- it remembers). PostgreSQL processes hear it at once through LISTEN/NOTIFY; SQLite processes
-- read the counter.
CREATE TABLE signals (
    name       TEXT PRIMARY KEY NOT NULL,
    generation BIGINT NOT NULL
);
INSERT INTO signals (name, generation) VALUES ('revoked', 0);

-- The roll of live gateway processes (`serve`, `worker`): each says it is alive every few
-- seconds and which revocation it has heard (what a revoking command waits for); the live
-- `serve` count is what each divides a partner's inbound rate limit by, and a process nudges
-- the outbox processors only when one runs elsewhere (`delivers`).
CREATE TABLE processes (
    id            TEXT PRIMARY KEY NOT NULL,
    kind          TEXT NOT NULL,
    delivers      BOOLEAN NOT NULL,
    started_at    BIGINT NOT NULL,
    seen_at       BIGINT NOT NULL,
    revoked_heard BIGINT NOT NULL
);

-- A partner's open circuit breaker, shared by every outbox processor on the database: while
-- `breaker_open_until` is ahead, none claims the partner's deliveries.
ALTER TABLE partner_controls ADD COLUMN breaker_open_until BIGINT;
