//! What operators see of the machine (never other users' things, only their size): storage per store,
//! as `GET /api/v1/ops/storage`, the dashboard's storage card and `server retention` show it.

use serde::{Deserialize, Serialize};

/// One store that retention prunes: the rows it holds, their bytes and age, and when it is pruned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoreUsage {
    /// The store's stable name (`delivered`, `webhook_messages`, …), as in `app_store_rows{store}`.
    pub name: String,
    pub rows: u64,
    /// Bytes on disk of its tables and indexes. Stores that share one table (delivered notifications
    /// and dead letters) get their share by rows. `None` where the engine cannot say (Redis).
    pub bytes: Option<u64>,
    /// The oldest row's age stamp (ms since the epoch); `None` when empty.
    pub oldest_ms: Option<i64>,
    /// How long a row is kept after the moment that ages it (`APP_RETENTION__…`).
    pub keep_secs: u64,
    /// Rows this instance pruned since it started.
    pub pruned: u64,
}

/// A file on disk (a SQLite database with its WAL).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FileUsage {
    /// `queue` (the embedded notification queue) or `app_db`.
    pub name: String,
    pub bytes: u64,
}

/// Storage as of the last retention pass of the instance that answers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StorageReport {
    /// When the figures were taken (ms since the epoch); `None` before this instance's first pass.
    pub measured_ms: Option<i64>,
    /// When the next pass starts (ms since the epoch).
    pub next_pass_ms: Option<i64>,
    pub stores: Vec<StoreUsage>,
    pub files: Vec<FileUsage>,
}

impl StorageReport {
    /// Bytes of every store that could say.
    pub fn total_bytes(&self) -> u64 {
        self.stores.iter().filter_map(|s| s.bytes).sum()
    }
}

/// Bytes in a short human form (`12.3 MB`, decimal units as `du -h --si` prints them).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A duration in seconds in its largest whole unit (`14 d`, `24 h`, `90 s`).
pub fn human_secs(s: u64) -> String {
    match s {
        0 => "0 s".into(),
        s if s % 86_400 == 0 => format!("{} d", s / 86_400),
        s if s % 3_600 == 0 => format!("{} h", s / 3_600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// An age in its largest unit, rounded down (`3 d`, `5 h`, `12 min`, `40 s`).
pub fn human_age(s: u64) -> String {
    match s {
        0..=59 => format!("{s} s"),
        60..=3_599 => format!("{} min", s / 60),
        3_600..=86_399 => format!("{} h", s / 3_600),
        _ => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_as_people_write_them() {
        assert_eq!([0, 999, 1_000, 1_234_567, 5_000_000_000].map(human_bytes), ["0 B", "999 B", "1.0 kB", "1.2 MB", "5.0 GB"]);
        assert_eq!([0, 90, 600, 86_400, 14 * 86_400, 7_200].map(human_secs), ["0 s", "90 s", "10 min", "1 d", "14 d", "2 h"]);
        assert_eq!([59, 90, 3_725, 90_000].map(human_age), ["59 s", "1 min", "1 h", "1 d"]);
    }

    #[test]
    fn total_counts_only_stores_that_know_their_bytes() {
        let store = |bytes| StoreUsage { name: "x".into(), rows: 1, bytes, oldest_ms: None, keep_secs: 1, pruned: 0 };
        let r = StorageReport { stores: vec![store(Some(10)), store(None), store(Some(5))], ..Default::default() };
        assert_eq!(r.total_bytes(), 15);
    }
}
