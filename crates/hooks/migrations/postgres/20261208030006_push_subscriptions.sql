-- Issue 20: Web Push subscriptions, one per browser (its push endpoint) per owner; a push
-- notification's recipient is a subscription's id. Bounded per owner (100); deleted by their owner or
-- when the push service answers 404/410.
CREATE TABLE push_subscriptions (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);
CREATE UNIQUE INDEX push_subscriptions_owner_endpoint ON push_subscriptions(owner, endpoint);
