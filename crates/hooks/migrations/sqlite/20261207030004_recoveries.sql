-- Issue 18: "recover failed messages since": one row per recovery, its progress stored per batch
-- (cursor_seq: the last message looked at) and its runner's heartbeat, so another instance takes over
-- a recovery whose runner died.
CREATE TABLE webhook_recoveries (
    id           TEXT    PRIMARY KEY,
    owner        TEXT    NOT NULL,
    endpoint_id  TEXT    NOT NULL,
    since_ms     BIGINT  NOT NULL,
    until_ms     BIGINT  NOT NULL,
    status       TEXT    NOT NULL,
    total        BIGINT  NOT NULL,
    sent         BIGINT  NOT NULL,
    cursor_seq   BIGINT  NOT NULL,
    heartbeat_ms BIGINT  NOT NULL,
    created_ms   BIGINT  NOT NULL,
    finished_ms  BIGINT
);
CREATE INDEX webhook_recoveries_by_endpoint ON webhook_recoveries(endpoint_id, created_ms);
CREATE UNIQUE INDEX webhook_recoveries_one_running ON webhook_recoveries(endpoint_id) WHERE status = 'running';
CREATE INDEX webhook_recoveries_by_age ON webhook_recoveries(created_ms);
