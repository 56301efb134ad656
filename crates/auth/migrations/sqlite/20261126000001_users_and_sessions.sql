-- Accounts and the registry of signed-in sessions.
-- Times are Unix seconds (UTC).
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

-- One row per signed-in session. `handle` is a random public name for the session that the UI may show
-- and post back; the session cookie's id is never shown or sent anywhere but in the cookie.
CREATE TABLE user_sessions (
    handle       TEXT    PRIMARY KEY NOT NULL,
    store_id     TEXT    NOT NULL,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    user_agent   TEXT    NOT NULL DEFAULT '',
    client_ip    TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX user_sessions_by_user ON user_sessions(user_id);
