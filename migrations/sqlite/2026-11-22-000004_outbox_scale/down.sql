CREATE INDEX outbox_open ON outbox (id) WHERE status IN ('pending', 'in_flight');
DROP INDEX outbox_unsettled;
