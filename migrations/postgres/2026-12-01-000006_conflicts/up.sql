-- Conflicts (PostgreSQL): what each partner last saw of each ticket, who last set each field at
-- which version, and the queue of conflicting writes held for people.

-- Per field: {"state": {"v": 5, "by": "acme-msp", "at": 1764576000000}, …}. Rows written
-- before this migration start empty: their fields count as set at version 0.
ALTER TABLE tickets ADD COLUMN field_stamps TEXT NOT NULL DEFAULT '{}';
-- Open conflict records of the ticket: a write looks at the queue only when this is above 0.
ALTER TABLE tickets ADD COLUMN open_conflicts BIGINT NOT NULL DEFAULT 0;
-- The highest ticket version the partner is known to have seen (its write's answer, a push
-- delivered to it, its read).
ALTER TABLE xrefs ADD COLUMN seen_version BIGINT NOT NULL DEFAULT 0;
-- The ticket version a journal entry belongs to (NULL on rows written before this migration).
ALTER TABLE journal ADD COLUMN version BIGINT;

CREATE TABLE conflicts (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id          BIGINT NOT NULL REFERENCES tickets (id),
    ticket_number      TEXT NOT NULL,
    partner            TEXT NOT NULL,
    request_id         TEXT NOT NULL,
    -- open, resolved, superseded or overwritten
    status             TEXT NOT NULL,
    -- The version the partner had seen, and the ticket's version when the write came.
    seen_version       BIGINT NOT NULL,
    ticket_version     BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    resolved_by        TEXT,
    resolved_at        BIGINT,
    resolution_comment TEXT
);
CREATE INDEX conflicts_status ON conflicts (status, id);
CREATE INDEX conflicts_ticket ON conflicts (ticket_id, status);
CREATE INDEX conflicts_partner ON conflicts (partner, status);

CREATE TABLE conflict_fields (
    conflict_id     BIGINT NOT NULL REFERENCES conflicts (id),
    field           TEXT NOT NULL,
    -- Canonical values as JSON text; base is what the partner last saw.
    base            TEXT NOT NULL,
    proposed        TEXT NOT NULL,
    current         TEXT NOT NULL,
    current_by      TEXT NOT NULL,
    current_at      BIGINT NOT NULL,
    current_version BIGINT NOT NULL,
    -- held (queued for people) or overwritten (on_conflict = "accept")
    disposition     TEXT NOT NULL,
    -- The value chosen at resolution (JSON text).
    chosen          TEXT,
    PRIMARY KEY (conflict_id, field)
);
