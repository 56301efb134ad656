-- Retention (issue 17): expired sessions, and tokens some time after they expired or were revoked.
CREATE INDEX user_sessions_by_expiry ON user_sessions(expires_at);
CREATE INDEX api_tokens_by_end ON api_tokens(COALESCE(revoked_at, expires_at));
