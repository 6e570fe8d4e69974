DROP TABLE inbound_webhooks;
DROP TABLE partner_secrets;
DROP TABLE auth_events;
ALTER TABLE credentials DROP COLUMN previous_valid_until;
ALTER TABLE credentials DROP COLUMN previous_secret_hash;
