-- Outbound delivery: leases, attempts, partner pause switch.

ALTER TABLE outbox ADD COLUMN lease_owner TEXT;
ALTER TABLE outbox ADD COLUMN last_status INTEGER;
ALTER TABLE outbox ADD COLUMN last_response TEXT;
ALTER TABLE outbox ADD COLUMN delivered_at BIGINT;

-- Only undelivered rows are scanned by the claim, however long the history grows.
CREATE INDEX outbox_open ON outbox (id) WHERE status IN ('pending', 'in_flight');
CREATE INDEX outbox_delivered_at ON outbox (delivered_at) WHERE status = 'delivered';

CREATE TABLE delivery_attempts (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id        BIGINT NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
    partner          TEXT NOT NULL,
    attempt          INTEGER NOT NULL,
    started_at       BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    http_status      INTEGER,
    outcome          TEXT NOT NULL,
    error_class      TEXT,
    response_excerpt TEXT,
    worker           TEXT NOT NULL
);
CREATE INDEX delivery_attempts_outbox ON delivery_attempts (outbox_id, id);
CREATE INDEX delivery_attempts_partner_time ON delivery_attempts (partner, started_at);

CREATE TABLE partner_controls (
    partner    TEXT PRIMARY KEY NOT NULL,
    paused     BOOLEAN NOT NULL,
    updated_at BIGINT NOT NULL
);
