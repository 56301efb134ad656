//! Webhooks out and in. Out: users register endpoints, events fan out to them as webhook
//! notifications through `notify` (its webhook channel signs per Standard Webhooks, retries with backoff
//! and dead-letters; this crate resolves each job's target and keeps the attempt log). In: signed
//! webhooks from configured sources are verified and deduplicated. No web framework in here.
//!
//! # API (used by the server)
//! - [`migrations`] (apply with `db::migrate`), [`Hooks::new`]`(pool, HooksConfig, Option<NotifyService>)`,
//!   then [`Hooks::attach`]`(&notify)` (or [`Hooks::extensions`] for a `notify::RedisWorker`).
//! - Endpoints: [`create_endpoint`](Hooks::create_endpoint), [`list_endpoints`](Hooks::list_endpoints),
//!   [`get_endpoint`](Hooks::get_endpoint), [`update_endpoint`](Hooks::update_endpoint),
//!   [`delete_endpoint`](Hooks::delete_endpoint), [`rotate_secret`](Hooks::rotate_secret),
//!   [`set_enabled`](Hooks::set_enabled).
//! - Messages: [`emit`](Hooks::emit), [`send_test`](Hooks::send_test), [`list_messages`](Hooks::list_messages),
//!   [`get_message`](Hooks::get_message), [`replay`](Hooks::replay), [`message_attempts`](Hooks::message_attempts),
//!   [`endpoint_attempts`](Hooks::endpoint_attempts), [`notices`](Hooks::notices).
//! - In: [`InboundVerifier::receive`].

pub mod config;
pub mod delivery;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod inbound;
pub mod push;
pub mod recovery;
pub mod sealing;
pub mod ssrf;

use rand::distributions::{Alphanumeric, DistString};
use serde::Serialize;
use std::sync::Arc;

pub use config::{AutoDisable, HooksConfig, InboundConfig, InboundSource, Secret};
pub use delivery::{AttemptRecord, DeliveryRecord, Message, MessageDetail, OwnerNotice};
pub use endpoints::{CreatedEndpoint, Endpoint, EndpointUpdate, NewEndpoint, RotatedSecret};
pub use error::{FieldError, HooksError};
pub use inbound::{check_request, CheckedRequest, Inbound, InboundEvent, InboundVerifier};
pub use recovery::Recovery;
pub use sealing::Sealer;
pub use ssrf::UrlGuard;

/// The tables, one folder per engine with the same versions (20261201030001…).
pub fn migrations() -> db::Migrations {
    db::Migrations { sqlite: sqlx::migrate!("./migrations/sqlite"), postgres: sqlx::migrate!("./migrations/postgres") }
}

/// What retention prunes of webhooks (issue 17), in this order: attempts, deliveries and messages by
/// when they were made (the message and its log go together), owner notices likewise.
pub const RETAINED_MESSAGES: &[db::Prunable] = &[
    db::Prunable { table: "webhook_attempts", key: "seq", older_than: "at_ms < $1", age: "at_ms", in_secs: false },
    db::Prunable { table: "webhook_deliveries", key: "seq", older_than: "created_ms < $1", age: "created_ms", in_secs: false },
    db::Prunable { table: "webhook_messages", key: "seq", older_than: "created_ms < $1", age: "created_ms", in_secs: false },
    db::Prunable { table: "webhook_owner_notices", key: "seq", older_than: "created_ms < $1", age: "created_ms", in_secs: false },
    db::Prunable { table: "webhook_recoveries", key: "id", older_than: "created_ms < $1 AND status <> 'running'", age: "created_ms", in_secs: false },
];

/// Inbound webhook ids, kept for recognising a sender's retries (which arrive re-signed with a fresh
/// timestamp, so only the id tells a repeat): keep them longer than senders retry (days).
pub const RETAINED_INBOUND_IDS: &[db::Prunable] =
    &[db::Prunable { table: "inbound_webhooks", key: "seq", older_than: "received_ms < $1", age: "received_ms", in_secs: false }];

/// The webhooks of every owner. Clone it freely; every clone is the same.
#[derive(Clone)]
pub struct Hooks {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub pool: sqlx::AnyPool,
    pub config: HooksConfig,
    pub guard: Arc<UrlGuard>,
    pub sealer: Sealer,
    /// `None` in a process that only delivers (a Redis worker): emitting and replaying answer 503.
    pub notify: Option<notify::NotifyService>,
    /// Per-owner outbound budget (`outbound_per_sec`, ten seconds' burst, at least one event to every endpoint).
    pub outbound: notify::OwnerRate,
}

impl Hooks {
    /// The pool must be migrated with [`migrations`]. Without `notify`, this process can resolve and log
    /// deliveries (as a worker) but not emit.
    pub fn new(pool: sqlx::AnyPool, config: HooksConfig, notify: Option<notify::NotifyService>) -> Result<Hooks, HooksError> {
        let guard = Arc::new(UrlGuard::new(&config.allow_networks)?);
        let sealer = Sealer::new(&config.secret_keys)?;
        let per_sec = config.outbound_per_sec;
        let outbound = notify::OwnerRate::new(per_sec, per_sec.saturating_mul(10).max(config.max_endpoints_per_owner));
        Ok(Hooks { inner: Arc::new(Inner { pool, config, guard, sealer, notify, outbound }) })
    }

    pub fn config(&self) -> &HooksConfig {
        &self.inner.config
    }

    pub fn guard(&self) -> &UrlGuard {
        &self.inner.guard
    }

    pub(crate) fn pool(&self) -> &sqlx::AnyPool {
        &self.inner.pool
    }
}

/// One page of a newest-first list. Pass `next_cursor` back as [`PageRequest::cursor`] for the next.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default)]
pub struct PageRequest {
    /// 1 to 100; 20 when absent.
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

pub const MAX_PAGE: u32 = 100;

impl PageRequest {
    pub fn first(limit: u32) -> Self {
        Self { limit: Some(limit), cursor: None }
    }

    /// (rows to fetch = limit + 1 to see whether there is a next page, seq upper bound).
    pub(crate) fn bounds(&self) -> Result<(i64, i64), HooksError> {
        let limit = self.limit.unwrap_or(20);
        if limit == 0 || limit > MAX_PAGE {
            return Err(HooksError::invalid("limit", format!("must be from 1 to {MAX_PAGE}")));
        }
        let before = match &self.cursor {
            None => i64::MAX,
            Some(c) => {
                c.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| HooksError::invalid("cursor", "is not a cursor from a previous page"))?
            }
        };
        Ok((limit as i64 + 1, before))
    }
}

/// Cuts the extra row fetched by [`PageRequest::bounds`] and makes the cursor from the last seq.
pub(crate) fn page<T>(mut rows: Vec<(i64, T)>, fetch: i64) -> Page<T> {
    let more = rows.len() as i64 >= fetch;
    if more {
        rows.truncate(fetch as usize - 1);
    }
    let next_cursor = if more { rows.last().map(|(seq, _)| seq.to_string()) } else { None };
    Page { items: rows.into_iter().map(|(_, t)| t).collect(), next_cursor }
}

pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", Alphanumeric.sample_string(&mut rand::thread_rng(), 24))
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// RFC 3339 in UTC with milliseconds, as the Standard Webhooks payload's `timestamp`.
pub(crate) fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(1_614_265_330_000), "2021-02-25T15:02:10Z");
        assert_eq!(rfc3339(1_614_265_330_250), "2021-02-25T15:02:10.25Z");
    }

    #[test]
    fn page_requests_are_bounded() {
        assert_eq!(PageRequest::default().bounds().unwrap(), (21, i64::MAX));
        assert_eq!(PageRequest { limit: Some(5), cursor: Some("42".into()) }.bounds().unwrap(), (6, 42));
        assert_eq!(PageRequest::first(0).bounds().unwrap_err().field_errors()[0].field, "limit");
        assert_eq!(PageRequest::first(101).bounds().unwrap_err().field_errors()[0].field, "limit");
        assert_eq!(PageRequest { limit: None, cursor: Some("x".into()) }.bounds().unwrap_err().field_errors()[0].field, "cursor");
        let p = page(vec![(9, 'a'), (8, 'b'), (7, 'c')], 3);
        assert_eq!((p.items, p.next_cursor.as_deref()), (vec!['a', 'b'], Some("8")));
        let p = page(vec![(9, 'a')], 3);
        assert_eq!(p.next_cursor, None);
    }

    #[test]
    fn ids_carry_their_prefix() {
        let id = new_id("ep");
        assert!(id.starts_with("ep_") && id.len() == 27, "{id}");
        assert_ne!(new_id("msg"), new_id("msg"));
    }
}
