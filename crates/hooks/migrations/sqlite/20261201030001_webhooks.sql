-- Webhooks out (endpoints, messages, deliveries and their attempts, notices to owners) and in (received
-- ids, for dedup). Times are Unix milliseconds; flags are 0/1 integers; lists are JSON text. `seq` orders
-- rows and is the pagination cursor; `id` is the public name.
CREATE TABLE webhook_endpoints (
    seq                      INTEGER PRIMARY KEY AUTOINCREMENT,
    id                       TEXT    NOT NULL UNIQUE,
    owner                    TEXT    NOT NULL,
    url                      TEXT    NOT NULL,
    description              TEXT    NOT NULL DEFAULT '',
    event_types              TEXT    NOT NULL DEFAULT '[]',
    secret                   TEXT    NOT NULL,
    previous_secret          TEXT,
    previous_secret_until_ms BIGINT,
    enabled                  BIGINT  NOT NULL DEFAULT 1,
    disabled_reason          TEXT,
    consecutive_failures     BIGINT  NOT NULL DEFAULT 0,
    failing_since_ms         BIGINT,
    created_ms               BIGINT  NOT NULL,
    updated_ms               BIGINT  NOT NULL
);
CREATE INDEX webhook_endpoints_by_owner ON webhook_endpoints(owner, seq);

CREATE TABLE webhook_messages (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT    NOT NULL UNIQUE,
    owner      TEXT    NOT NULL,
    event_type TEXT    NOT NULL,
    payload    TEXT    NOT NULL,
    created_ms BIGINT  NOT NULL
);
CREATE INDEX webhook_messages_by_owner ON webhook_messages(owner, seq);

-- One row per notification enqueued for a (message, endpoint): several after replays.
CREATE TABLE webhook_deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    notification_id TEXT    NOT NULL UNIQUE,
    message_id      TEXT    NOT NULL,
    endpoint_id     TEXT    NOT NULL,
    state           TEXT    NOT NULL,
    attempts        BIGINT  NOT NULL DEFAULT 0,
    last_attempt_ms BIGINT,
    created_ms      BIGINT  NOT NULL
);
CREATE INDEX webhook_deliveries_by_message ON webhook_deliveries(message_id);

CREATE TABLE webhook_attempts (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id      TEXT    NOT NULL,
    endpoint_id     TEXT    NOT NULL,
    notification_id TEXT    NOT NULL,
    attempt         BIGINT  NOT NULL,
    at_ms           BIGINT  NOT NULL,
    duration_ms     BIGINT  NOT NULL,
    status_code     BIGINT,
    outcome         TEXT    NOT NULL,
    error           TEXT
);
CREATE INDEX webhook_attempts_by_message ON webhook_attempts(message_id, seq);
CREATE INDEX webhook_attempts_by_endpoint ON webhook_attempts(endpoint_id, seq);

CREATE TABLE webhook_owner_notices (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    owner       TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    endpoint_id TEXT,
    message     TEXT    NOT NULL,
    created_ms  BIGINT  NOT NULL,
    read_ms     BIGINT
);
CREATE INDEX webhook_owner_notices_by_owner ON webhook_owner_notices(owner, seq);

CREATE TABLE inbound_webhooks (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT    NOT NULL,
    webhook_id  TEXT    NOT NULL,
    webhook_timestamp BIGINT NOT NULL,
    received_ms BIGINT  NOT NULL,
    payload     TEXT    NOT NULL,
    UNIQUE (source, webhook_id)
);
CREATE INDEX inbound_webhooks_by_time ON inbound_webhooks(received_ms);
