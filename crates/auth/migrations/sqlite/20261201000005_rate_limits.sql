-- Shared rate limits (auth::throttle): login failures per account and per address, sign-ups per
-- address. One row per key ("<limit>:<key>") holding the GCRA's theoretical arrival time in Unix
-- milliseconds; a row whose time has passed is a full allowance and is swept.
CREATE TABLE rate_limits (
    key    TEXT   PRIMARY KEY,
    tat_ms BIGINT NOT NULL
);
CREATE INDEX rate_limits_by_tat ON rate_limits(tat_ms);
