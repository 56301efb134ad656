-- Lookups compare lower(username) on every engine (PostgreSQL has no NOCASE collation); index that.
CREATE INDEX users_username_lower ON users (lower(username));
