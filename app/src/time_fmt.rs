//! Unix seconds as text. The same function runs on the server and in the browser, so hydration matches.

use time::{macros::format_description, OffsetDateTime};

pub fn utc(ts: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC")).ok())
        .unwrap_or_else(|| "—".into())
}

/// RFC 3339 for `<time datetime=…>`.
pub fn iso(ts: i64) -> String {
    OffsetDateTime::from_unix_timestamp(ts)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}
