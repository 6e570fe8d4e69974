-- Operator console sign-ins: one row per browser session, in the database so that every
-- gateway process honours it and a sign-out ends it everywhere. Only the SHA-256 of the
-- cookie's token is kept; the CSRF token is the one every console form must send back.
CREATE TABLE console_sessions (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash    TEXT NOT NULL UNIQUE,
    credential_id BIGINT NOT NULL REFERENCES credentials (id),
    read_only     BOOLEAN NOT NULL,
    csrf_token    TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_seen_at  BIGINT NOT NULL,
    expires_at    BIGINT NOT NULL,
    ended_at      BIGINT
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
-- The console's dead-letter pages walk only dead rows, newest first, by partner or all, without
-- reading the delivered history.
CREATE INDEX outbox_dead ON outbox (id) WHERE status = 'dead';
CREATE INDEX outbox_dead_partner ON outbox (partner, id) WHERE status = 'dead';
-- A ticket's story on the console lists the reconciliation items about it.
CREATE INDEX reconcile_items_ticket ON reconcile_items (ticket_id, id);
