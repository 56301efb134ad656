-- Multi-user isolation (issue 14). Keep in step with ../postgres/20261206020001_isolation.sql.
-- Who started a run and what its steps may do: `scopes` is space-separated scope names, or `*` for all
-- (a browser session). Runs from before this was recorded may only do what workflows:write allows until
-- their owner retries them (a retry records the retrier).
ALTER TABLE workflow_runs ADD COLUMN started_by TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE workflow_runs ADD COLUMN token_id INTEGER;
ALTER TABLE workflow_runs ADD COLUMN scopes TEXT NOT NULL DEFAULT 'workflows:write';
CREATE INDEX workflow_runs_owner_status ON workflow_runs (owner, status);

-- An inbound message belongs to its source's owner and is only ever taken by that owner's runs. Messages
-- stored before (no owner) are never delivered.
ALTER TABLE workflow_inbox ADD COLUMN owner TEXT;
DROP INDEX workflow_inbox_open;
CREATE INDEX workflow_inbox_open ON workflow_inbox (owner, source, correlation, id) WHERE consumed_by IS NULL;
