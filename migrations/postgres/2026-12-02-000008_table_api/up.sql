-- The ServiceNow Table-API facade (PostgreSQL): a stable 32-hex sys_id per ticket, facade
-- logins among the credentials, and the refresh tokens of the facade's OAuth password grant.

-- A volatile default: every existing row gets its own value, and so does every insert.
ALTER TABLE tickets ADD COLUMN sys_id TEXT NOT NULL DEFAULT replace(gen_random_uuid()::text, '-', '');
CREATE UNIQUE INDEX tickets_sys_id ON tickets (sys_id);
-- What the facade's encoded queries range over most (sys_created_on).
CREATE INDEX tickets_created_at ON tickets (created_at, id);

-- `client` (the OAuth client-credentials grant) or `login` (the facade's HTTP Basic user and
-- the password grant's username).
ALTER TABLE credentials ADD COLUMN kind TEXT NOT NULL DEFAULT 'client';

CREATE TABLE refresh_tokens (
    token_hash    TEXT PRIMARY KEY NOT NULL,
    -- The login the token was issued to.
    credential_id BIGINT NOT NULL REFERENCES credentials (id),
    partner       TEXT NOT NULL,
    scope         TEXT NOT NULL,
    expires_at    BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    -- A refresh token is used once: its successor replaces it.
    used_at       BIGINT
);
CREATE INDEX refresh_tokens_credential ON refresh_tokens (credential_id);
