//! The notification pipeline as clients see it: the dashboard, its live stream (SSE) and the REST API
//! (`/api/v1/runs`) exchange these very types. `notify` builds them from its own state
//! (`From<RunSnapshot>` and friends live there); nothing mirrors them.

use serde::{Deserialize, Serialize};

/// One simulation run, live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunView {
    pub id: i64,
    /// running, completed, cancelled or failed.
    pub status: String,
    /// The parameters in words: "10,000 at 1M / hour · webhook, email · embedded".
    pub summary: String,
    pub count: u64,
    pub produced: u64,
    pub delivered: u64,
    pub failed_attempts: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub cancelled: u64,
    /// Notifications whose time to live ran out before they were sent (settled unsent).
    #[serde(default)]
    pub expired: u64,
    pub backlog: u64,
    /// Enqueue to delivered, retries included: p50, p95, p99 in milliseconds.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<f64>))]
    pub end_to_end_ms: [f64; 3],
    /// One successful delivery attempt: p50, p95, p99 in milliseconds.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<f64>))]
    pub attempt_ms: [f64; 3],
    /// (seconds since start, delivered in that second).
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<u32>>))]
    pub throughput: Vec<(u32, u32)>,
    /// The paced rate, per second (none for "as fast as possible").
    pub target_per_sec: Option<f64>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

impl RunView {
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }

    /// Settled notifications (delivered, dead-lettered, dropped by a cancel or expired) out of `count`.
    pub fn settled(&self) -> u64 {
        (self.delivered + self.dead_lettered + self.cancelled + self.expired).min(self.count)
    }
}

/// A run in a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunRow {
    pub id: i64,
    pub status: String,
    pub summary: String,
    pub count: u64,
    pub delivered: u64,
    pub dead_lettered: u64,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

/// A notification that used up its attempts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetterView {
    pub id: String,
    pub run: Option<i64>,
    pub channel: String,
    pub recipient: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub dead_at_ms: i64,
}
