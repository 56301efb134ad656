-- Every API token expires (auth.token_max_lifetime_days, default 365). Tokens made before that rule
-- without an expiry get one year from this migration, so no script stops working on upgrade day
-- (PostgreSQL dialect of the SQLite migration with the same version).
UPDATE api_tokens SET expires_at = CAST(EXTRACT(EPOCH FROM now()) AS BIGINT) + 365 * 86400
WHERE expires_at IS NULL AND revoked_at IS NULL;
