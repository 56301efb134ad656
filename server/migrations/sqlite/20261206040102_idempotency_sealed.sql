-- Stored Idempotency-Key answers are sealed from now on (server/src/api/idempotency.rs). Answers kept in
-- clear before that may hold a new endpoint's signing secret: drop them (they would have expired within
-- a day anyway; a retry with such a key is treated as a new request).
DELETE FROM api_idempotency WHERE body LIKE '%whsec%';
