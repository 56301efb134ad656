//! Webhook endpoints and owner notices as clients see them: the REST API (`/api/v1/webhooks/…`) and the
//! settings pages exchange these very types; `hooks` builds them (and re-exports them). Never with a
//! secret: secrets travel only in the answers that create or rotate one.

use serde::{Deserialize, Serialize};

/// An endpoint as its owner sees it (never with its secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Endpoint {
    pub id: String,
    pub url: String,
    pub description: String,
    /// Subscribed event types; empty means all.
    pub event_types: Vec<String>,
    pub enabled: bool,
    /// Why it was disabled (automatically or by its owner).
    pub disabled_reason: Option<String>,
    /// Messages dead-lettered in a row since the last success.
    pub consecutive_failures: i64,
    /// Until when the previous secret still signs (a rotation overlap in progress), unix ms.
    pub previous_secret_until_ms: Option<i64>,
    /// At most this many deliveries a second to it (set by its owner); `None`: no limit of its own.
    /// Messages over it wait in the queue, not in a worker, so other endpoints are not slowed.
    pub rate_limit_per_sec: Option<u32>,
    pub created_ms: i64,
    pub updated_ms: i64,
}

impl Endpoint {
    /// Does this endpoint want events of this type?
    pub fn subscribes_to(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type)
    }
}

/// Something the owner should be told about (an endpoint disabled after failing repeatedly), shown
/// until read.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OwnerNotice {
    pub id: i64,
    /// `endpoint_disabled`, or `message_exhausted` (one unread notice per endpoint, counting the
    /// messages that ran out of attempts there).
    pub kind: String,
    pub endpoint_id: Option<String>,
    pub message: String,
    pub created_ms: i64,
    pub read: bool,
}

/// A new signing secret, shown once; the old one keeps signing beside it until
/// `previous_secret_until_ms`. Its `Debug` never shows the secret.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RotatedSecret {
    pub secret: String,
    /// The old secret signs beside the new one until then (unix ms).
    pub previous_secret_until_ms: i64,
}

impl std::fmt::Debug for RotatedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RotatedSecret").field("previous_secret_until_ms", &self.previous_secret_until_ms).finish_non_exhaustive()
    }
}

/// One delivery attempt of a message to an endpoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
// flows has an AttemptRecord too: distinct names in the OpenAPI document.
#[cfg_attr(feature = "openapi", schema(as = WebhookAttempt))]
pub struct AttemptRecord {
    pub message_id: String,
    pub endpoint_id: String,
    pub notification_id: String,
    /// 1 for the first attempt of this delivery.
    pub attempt: i64,
    pub at_ms: i64,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    /// `delivered`, `retrying` or `failed` (no attempts left, or the endpoint was gone or disabled).
    pub outcome: String,
    pub error: Option<String>,
}

/// A "recover failed messages since" of one endpoint: every message it missed since `since_ms` (made
/// until `until_ms`, when the recovery started) is sent to it again, once each, in the background.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recovery {
    pub id: String,
    pub endpoint_id: String,
    pub since_ms: i64,
    pub until_ms: i64,
    /// `running`, `completed`, or `stopped` (the endpoint was disabled or deleted meanwhile).
    pub status: String,
    /// Messages to send.
    pub total: u64,
    /// Sent so far (queued for delivery; each then follows the retry schedule).
    pub sent: u64,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
}
