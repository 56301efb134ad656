-- The REST API's own tables. Idempotency-Key answers (kept 24 hours) and the demo customer accounts
-- that the built-in onboarding workflow creates and deletes.
CREATE TABLE api_idempotency (
    owner        TEXT    NOT NULL,
    idem_key     TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT    NOT NULL DEFAULT '',
    created_ms   INTEGER NOT NULL,
    PRIMARY KEY (owner, idem_key)
);
CREATE INDEX api_idempotency_by_age ON api_idempotency(created_ms);

CREATE TABLE demo_customers (
    id         TEXT    PRIMARY KEY NOT NULL,
    owner      TEXT    NOT NULL,
    email      TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    -- The workflow run that created it: a repeated attempt of that step finds it instead of failing.
    run_id     TEXT    NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX demo_customers_email ON demo_customers(owner, lower(email));
