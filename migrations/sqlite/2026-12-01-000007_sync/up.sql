-- Reading partners' systems (SQLite): pull-sync watermarks, the leases that keep one run per
-- partner and job across processes, the runs with their counts, the records a pull could
-- not apply, and what reconciliation found.

-- One row per job and partner ('pull:servicenow', 'reconcile:servicenow').
CREATE TABLE sync_jobs (
    job         TEXT PRIMARY KEY,
    partner     TEXT NOT NULL,
    -- Pull: the partner's change time (ms) of the newest record read by the last complete run.
    watermark   BIGINT,
    -- Who runs the job now, until when (ms); a crashed process's lease simply runs out.
    lease_owner TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    last_run_id BIGINT,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE sync_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- pull or reconcile
    kind        TEXT NOT NULL,
    partner     TEXT NOT NULL,
    -- schedule, api or cli (with the operator)
    started_by  TEXT NOT NULL,
    dry_run     BOOLEAN NOT NULL,
    -- reconcile: open or all
    scope       TEXT NOT NULL,
    -- running, succeeded or failed
    status      TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    -- Pull: the window's start (partner time, ms) and the watermark it reached.
    since       BIGINT,
    watermark   BIGINT,
    -- Counts as JSON: pages, records, applied, … (pull); tickets, compared, drifted, … (reconcile).
    counts      TEXT NOT NULL,
    message     TEXT,
    owner       TEXT NOT NULL
);
CREATE INDEX sync_runs_partner ON sync_runs (kind, partner, id);

-- A record a pull run could not apply: the partner's id, the field errors, the raw record's hash.
CREATE TABLE sync_run_errors (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id            BIGINT NOT NULL REFERENCES sync_runs (id),
    partner_ticket_id TEXT,
    record_sha256     TEXT NOT NULL,
    -- JSON: [{field, code, message}]
    errors            TEXT NOT NULL,
    at                BIGINT NOT NULL
);
CREATE INDEX sync_run_errors_run ON sync_run_errors (run_id, id);

-- One difference reconciliation found between the hub and a partner's copy.
CREATE TABLE reconcile_items (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id            BIGINT NOT NULL REFERENCES sync_runs (id),
    partner           TEXT NOT NULL,
    ticket_id         BIGINT,
    ticket_number     TEXT,
    partner_ticket_id TEXT,
    -- missing_at_partner, missing_at_hub, hub_ahead, partner_ahead or both_changed
    kind              TEXT NOT NULL,
    -- JSON: [{field, hub, partner, base}] in canonical values
    fields            TEXT NOT NULL,
    -- What the hub knows that explains it (dead_letter, delivered, no_event, …).
    cause             TEXT NOT NULL,
    -- repushed, applied, conflict, capped or none (dry run, or nothing to do)
    action            TEXT NOT NULL,
    at                BIGINT NOT NULL
);
CREATE INDEX reconcile_items_run ON reconcile_items (run_id, id);
