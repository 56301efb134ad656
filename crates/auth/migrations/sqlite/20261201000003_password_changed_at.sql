-- When the user last chose a new password (Unix seconds); NULL until the first change. Lets the server
-- refuse sessions created before it, beside the registry rows that change_password removes.
ALTER TABLE users ADD COLUMN password_changed_at INTEGER;
