-- Issue 18: a per-endpoint rate limit the owner sets (messages per second); NULL: none.
ALTER TABLE webhook_endpoints ADD COLUMN rate_limit_per_sec BIGINT;
