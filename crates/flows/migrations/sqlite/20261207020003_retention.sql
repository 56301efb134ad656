-- Retention (issue 17): the pruner deletes finished runs and inbox messages by age.
CREATE INDEX workflow_runs_finished ON workflow_runs (finished_at_ms) WHERE finished_at_ms IS NOT NULL;
CREATE INDEX workflow_inbox_by_age ON workflow_inbox (received_at_ms);
