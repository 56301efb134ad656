-- API tokens a signed-in user creates on the settings page. Only the SHA-256 of the token is stored;
-- `prefix` is its first characters, kept so the page can tell tokens apart. `scopes` is a space-separated
-- list of scope names (see auth::tokens::Scope). Times are Unix seconds; a revoked token keeps its row.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    prefix       TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL UNIQUE,
    scopes       TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    expires_at   INTEGER,
    revoked_at   INTEGER
);
CREATE INDEX api_tokens_by_user ON api_tokens(user_id);
