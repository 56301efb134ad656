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
    pub kind: String,
    pub endpoint_id: Option<String>,
    pub message: String,
    pub created_ms: i64,
    pub read: bool,
}
