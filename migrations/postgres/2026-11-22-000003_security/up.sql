-- Security: credential rotation, authentication events, encrypted secrets, webhook replay guard.

ALTER TABLE credentials ADD COLUMN previous_secret_hash TEXT;
ALTER TABLE credentials ADD COLUMN previous_valid_until BIGINT;

CREATE TABLE auth_events (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        BIGINT NOT NULL,
    client_id TEXT,
    source    TEXT NOT NULL,
    outcome   TEXT NOT NULL,
    reason    TEXT NOT NULL
);
CREATE INDEX auth_events_client ON auth_events (client_id, at);
CREATE INDEX auth_events_source ON auth_events (source, at);

CREATE TABLE partner_secrets (
    partner    TEXT NOT NULL,
    name       TEXT NOT NULL,
    sealed     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (partner, name)
);

CREATE TABLE inbound_webhooks (
    partner     TEXT NOT NULL,
    webhook_id  TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (partner, webhook_id)
);
CREATE INDEX inbound_webhooks_age ON inbound_webhooks (received_at);
