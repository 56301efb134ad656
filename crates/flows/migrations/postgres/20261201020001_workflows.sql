-- Workflow definitions, runs, the attempt log and the inbound inbox (crates/flows). Times are unix
-- milliseconds; JSON is TEXT. Keep in step with ../sqlite/20261201020001_workflows.sql.

CREATE TABLE workflow_definitions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    format TEXT NOT NULL,
    source TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    UNIQUE (owner, name)
);

CREATE TABLE workflow_runs (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    definition_id BIGINT,
    workflow TEXT NOT NULL,
    definition_version BIGINT NOT NULL,
    definition TEXT NOT NULL,
    idempotency_key TEXT,
    input TEXT NOT NULL,
    status TEXT NOT NULL,
    current_step BIGINT NOT NULL,
    attempt BIGINT NOT NULL,
    state TEXT NOT NULL,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    failed_step BIGINT,
    error_code TEXT,
    error_message TEXT,
    wake_at_ms BIGINT,
    nudged BIGINT NOT NULL DEFAULT 0,
    wait_until_ms BIGINT,
    waiting_source TEXT,
    waiting_correlation TEXT,
    waiting_token TEXT,
    lease_owner TEXT,
    lease_until_ms BIGINT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT
);
CREATE UNIQUE INDEX workflow_runs_idempotency ON workflow_runs (owner, idempotency_key);
CREATE INDEX workflow_runs_owner ON workflow_runs (owner, seq);
CREATE INDEX workflow_runs_due ON workflow_runs (wake_at_ms) WHERE wake_at_ms IS NOT NULL;
CREATE INDEX workflow_runs_nudged ON workflow_runs (nudged) WHERE nudged = 1;
CREATE INDEX workflow_runs_waiting ON workflow_runs (waiting_source, waiting_correlation) WHERE waiting_source IS NOT NULL;

CREATE TABLE workflow_step_attempts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES workflow_runs (id) ON DELETE CASCADE,
    step_index BIGINT NOT NULL,
    step_name TEXT NOT NULL,
    phase TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    outcome TEXT NOT NULL,
    started_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT,
    output TEXT,
    error_code TEXT,
    error_message TEXT,
    next_attempt_at_ms BIGINT,
    worker TEXT
);
CREATE INDEX workflow_step_attempts_run ON workflow_step_attempts (run_id, id);

CREATE TABLE workflow_inbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source TEXT NOT NULL,
    correlation TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at_ms BIGINT NOT NULL,
    consumed_by TEXT,
    consumed_at_ms BIGINT
);
CREATE INDEX workflow_inbox_open ON workflow_inbox (source, correlation, id) WHERE consumed_by IS NULL;
CREATE INDEX workflow_inbox_consumed ON workflow_inbox (consumed_by) WHERE consumed_by IS NOT NULL;
