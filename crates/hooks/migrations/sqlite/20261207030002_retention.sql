-- Retention (issue 17): the pruner deletes by age, a batch at a time.
CREATE INDEX webhook_messages_by_age ON webhook_messages(created_ms);
CREATE INDEX webhook_deliveries_by_age ON webhook_deliveries(created_ms);
CREATE INDEX webhook_attempts_by_age ON webhook_attempts(at_ms);
CREATE INDEX webhook_owner_notices_by_age ON webhook_owner_notices(created_ms);
