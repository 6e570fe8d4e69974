-- Canonical store, cross-references, audit log, outbox and credentials (SQLite).
-- All timestamps are Unix epoch milliseconds (UTC).

CREATE TABLE counters (
    name  TEXT PRIMARY KEY NOT NULL,
    value BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('ticket_number', 0);

CREATE TABLE tickets (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    number               TEXT NOT NULL UNIQUE,
    kind                 TEXT NOT NULL,
    short_description    TEXT,
    description          TEXT,
    category             TEXT,
    subcategory          TEXT,
    impact               BIGINT,
    urgency              BIGINT,
    priority             BIGINT,
    state                TEXT NOT NULL,
    hold_reason          TEXT,
    assignment_group     TEXT,
    assigned_to          TEXT,
    caller               TEXT,
    configuration_item   TEXT,
    resolution_code      TEXT,
    resolution_notes     TEXT,
    estimated_completion TEXT,
    sla_due              TEXT,
    attributes           TEXT NOT NULL DEFAULT '{}',
    version              BIGINT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    created_by           TEXT NOT NULL,
    updated_by           TEXT NOT NULL
);
CREATE INDEX tickets_updated_at ON tickets (updated_at, id);

CREATE TABLE journal (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id        BIGINT NOT NULL REFERENCES tickets (id),
    kind             TEXT NOT NULL,
    author_partner   TEXT NOT NULL,
    partner_entry_id TEXT,
    body             TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE INDEX journal_ticket ON journal (ticket_id, id);
CREATE UNIQUE INDEX journal_partner_entry ON journal (ticket_id, author_partner, partner_entry_id);

CREATE TABLE xrefs (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    partner           TEXT NOT NULL,
    partner_ticket_id TEXT,
    ticket_id         BIGINT NOT NULL REFERENCES tickets (id),
    active            BOOLEAN NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (partner, partner_ticket_id),
    UNIQUE (partner, ticket_id)
);
CREATE INDEX xrefs_ticket ON xrefs (ticket_id);

CREATE TABLE transactions (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             BIGINT NOT NULL,
    partner        TEXT,
    request_id     TEXT NOT NULL,
    method         TEXT NOT NULL,
    path           TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL,
    result         TEXT NOT NULL,
    status         INTEGER NOT NULL,
    error_codes    TEXT NOT NULL DEFAULT '',
    ticket_id      BIGINT REFERENCES tickets (id),
    ticket_number  TEXT
);
CREATE INDEX transactions_partner ON transactions (partner, id);
CREATE INDEX transactions_ticket ON transactions (ticket_number, id);

CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    partner         TEXT NOT NULL,
    ticket_id       BIGINT NOT NULL REFERENCES tickets (id),
    event           TEXT NOT NULL,
    delivery_id     TEXT NOT NULL UNIQUE,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    last_error      TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at, id);
CREATE INDEX outbox_partner_ticket ON outbox (partner, ticket_id, id);

CREATE TABLE idempotency_keys (
    partner       TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    status        INTEGER NOT NULL,
    response_body TEXT NOT NULL,
    ticket_id     BIGINT REFERENCES tickets (id),
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (partner, key)
);

CREATE TABLE credentials (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id   TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    partner     TEXT,
    scope       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE access_tokens (
    token_hash    TEXT PRIMARY KEY NOT NULL,
    credential_id BIGINT NOT NULL REFERENCES credentials (id),
    partner       TEXT,
    scope         TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX access_tokens_expiry ON access_tokens (expires_at);
