-- The claim's "is an earlier row of this ticket still open or dead?" check reads only rows
-- that are not delivered, so its cost stays flat however many deliveries a ticket has had.
CREATE INDEX outbox_unsettled ON outbox (partner, ticket_id, id) WHERE status IN ('pending', 'in_flight', 'dead');
-- The claim now walks outbox_due; this index only cost a write per insert and state change.
DROP INDEX outbox_open;
