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
    OffsetDateTime::from_unix_timestamp(ts).ok().and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()).unwrap_or_default()
}

/// Unix milliseconds as [`utc`] shows seconds.
pub fn utc_ms(ms: i64) -> String {
    utc(ms.div_euclid(1000))
}

/// The time of day with milliseconds (`10:44:02.100`), for step timelines.
pub fn clock_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(format_description!("[hour]:[minute]:[second].[subsecond digits:3]")).ok())
        .unwrap_or_else(|| "—".into())
}

/// A duration in words: `84 ms`, `1.5 s`, `2 min 5 s`.
pub fn duration_ms(ms: i64) -> String {
    match ms {
        ..=999 => format!("{} ms", ms.max(0)),
        1000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000),
    }
}
