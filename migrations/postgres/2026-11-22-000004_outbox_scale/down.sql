DROP INDEX outbox_unsettled;
