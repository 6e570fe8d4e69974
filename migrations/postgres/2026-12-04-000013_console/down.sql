DROP INDEX reconcile_items_ticket;
DROP INDEX outbox_dead_partner;
DROP INDEX outbox_dead;
DROP TABLE console_sessions;
