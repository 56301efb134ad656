-- Issue 18: one unread "ran out of attempts" notice per endpoint, counting the messages, so a dead
-- receiver at full rate cannot bury the owner's other notices.
ALTER TABLE webhook_owner_notices ADD COLUMN repeats BIGINT NOT NULL DEFAULT 1;
CREATE UNIQUE INDEX webhook_owner_notices_one_unread_exhausted ON webhook_owner_notices(owner, endpoint_id)
    WHERE kind = 'message_exhausted' AND read_ms IS NULL;
