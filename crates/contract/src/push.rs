//! Web Push subscriptions as clients see them: the REST API (`/api/v1/push/subscriptions`) and the
//! notifications dashboard exchange this very type; `hooks` builds it (and re-exports it). Never with
//! the keys: they are what a push message is encrypted for, and are only ever given, not shown.

use serde::{Deserialize, Serialize};

/// A registered subscription as its owner sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Subscription {
    /// What a push notification names as its `recipient`.
    pub id: String,
    pub endpoint: String,
    pub created_ms: i64,
}
