//! Signed-in sessions as their user sees them: the success page lists these, read straight from the
//! session registry (`auth`).

use serde::{Deserialize, Serialize};

/// One signed-in session. `handle` is a public name for it, never its cookie value or store id.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "sqlx", derive(sqlx::FromRow))]
pub struct SessionInfo {
    pub handle: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub user_agent: String,
    pub client_ip: String,
}
