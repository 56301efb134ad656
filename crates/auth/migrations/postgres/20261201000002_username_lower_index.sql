-- Usernames are unique regardless of case (SQLite's column has COLLATE NOCASE for that).
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));
