//! Extension points for whoever owns webhook endpoints (the `hooks` crate): where a webhook
//! notification goes and with which keys ([`WebhookTargets`]), which addresses the HTTP client may
//! connect to ([`AddressPolicy`], checked after DNS resolution so a name cannot be re-pointed at a
//! private address), and who hears about every attempt ([`AttemptObserver`]).
//!
//! Without them the webhook channel posts every job to the one configured URL, as before.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use crate::model::{Attempt, Job};
use crate::signature::SigningKey;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where one webhook job is delivered, and how it is signed.
#[derive(Clone)]
pub struct WebhookTarget {
    pub url: String,
    /// Every key signs; the `webhook-signature` header carries one `v1,` entry per key, space-separated
    /// (the current key and, during a rotation overlap, the previous one). Must not be empty.
    pub keys: Vec<SigningKey>,
    /// Sent as `webhook-id`: the receiver's dedup key, so it stays the same across retries and replays.
    pub message_id: String,
    /// The exact request body.
    pub body: String,
    /// The endpoint's own limit, deliveries per second (per instance): over it, the job is deferred
    /// in the queue rather than waited for in a worker.
    pub rate_limit_per_sec: Option<u32>,
}

impl std::fmt::Debug for WebhookTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookTarget")
            .field("url", &self.url)
            .field("keys", &self.keys.len())
            .field("message_id", &self.message_id)
            .finish_non_exhaustive()
    }
}

/// Why a job has no target. The message is short and safe to store in the attempt history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// Could not look the target up now (e.g. the database is busy): a failed attempt, retried as usual.
    Retry(String),
    /// The target is gone or disabled: dead-lettered at once, no request sent, no retries.
    GiveUp(String),
}

/// Looks up the target of a webhook job. `Ok(None)` means "not mine": the configured URL and key are
/// used, so ordinary webhook notifications keep working.
pub trait WebhookTargets: Send + Sync {
    fn resolve<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<Option<WebhookTarget>, RouteError>>;
}

/// Which resolved addresses a routed delivery may connect to. Applied to every address a name resolves
/// to at connect time, and to IP-literal URLs before the request.
pub trait AddressPolicy: Send + Sync {
    fn permits(&self, ip: IpAddr) -> bool;

    /// Turns a host name into addresses: the system resolver, unless the policy brings its own (a test
    /// resolver that answers differently each time, to prove rebinding is caught at connect time).
    fn lookup<'a>(&'a self, host: &'a str) -> BoxFuture<'a, std::io::Result<Vec<IpAddr>>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, 0)).await?.map(|a| a.ip()).collect()) })
    }
}

/// Targets and the address policy their deliveries are held to (the configured URL is not: it is the
/// operator's own, usually the local sink on loopback).
#[derive(Clone)]
pub struct WebhookRouting {
    pub targets: Arc<dyn WebhookTargets>,
    pub policy: Arc<dyn AddressPolicy>,
    /// Users' Web Push subscriptions; their endpoints are held to the same `policy`.
    pub push: Option<Arc<dyn PushTargets>>,
}

/// Where one push job goes: the subscription its recipient names, keys decoded.
#[derive(Clone)]
pub struct PushTarget {
    pub endpoint: String,
    /// The browser's P-256 public key, uncompressed (65 bytes).
    pub p256dh: Vec<u8>,
    /// The 16-byte authentication secret.
    pub auth: Vec<u8>,
}

impl std::fmt::Debug for PushTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushTarget").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

/// Users' push subscriptions (the `hooks` crate keeps them): a push job's recipient is the id of one
/// of its owner's subscriptions.
pub trait PushTargets: Send + Sync {
    /// The subscription `job.recipient` names when it is `job.owner`'s; `GiveUp` when there is none
    /// (deleted, or someone else's: the same answer).
    fn resolve<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<PushTarget, RouteError>>;
    /// Has `owner` a subscription `id`? (A push to any other is refused at enqueue.)
    fn owns<'a>(&'a self, owner: &'a str, id: &'a str) -> BoxFuture<'a, Result<bool, RouteError>>;
    /// The push service answered 404 or 410: the subscription is gone for good; forget it.
    fn gone<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, ()>;
}

/// One finished attempt, as observers see it.
#[derive(Debug, Clone)]
pub struct AttemptReport {
    pub job: Job,
    pub attempt: Attempt,
    /// The HTTP status the receiver answered, when there was an answer.
    pub status: Option<u16>,
    /// The target resolver gave up on the job (`RouteError::GiveUp`): no request was sent.
    pub refused: bool,
}

/// Hears about every attempt of every job, before the queue records it (so a crash in between means the
/// job is delivered again and reported again: at least once). Keep it quick, and return a ready future
/// for jobs that are not yours: workers wait for it.
pub trait AttemptObserver: Send + Sync {
    fn on_attempt<'a>(&'a self, report: &'a AttemptReport) -> BoxFuture<'a, ()>;
}

/// Everything that can be plugged into a worker pool; for [`RedisWorker::start_with`](crate::RedisWorker::start_with).
#[derive(Clone, Default)]
pub struct DeliveryExtensions {
    pub routing: Option<WebhookRouting>,
    pub observers: Vec<Arc<dyn AttemptObserver>>,
}

/// A DNS resolver for reqwest that drops the addresses the policy refuses, so a host name that resolves
/// to a private address (at registration or later, DNS rebinding) is never connected to. Public so
/// other HTTP clients (workflow `http` steps) connect under the same rule.
pub struct GuardedResolver {
    pub policy: Arc<dyn AddressPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<dyn AddressPolicy>) -> Self {
        Self { policy }
    }
}

/// The error behind a refused connection, found again in reqwest's error chain.
#[derive(Debug)]
pub struct AddressRefused;

impl std::fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("address not allowed")
    }
}

impl std::error::Error for AddressRefused {}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found = policy.lookup(&host).await?;
            let allowed: Vec<SocketAddr> = found.into_iter().filter(|ip| policy.permits(*ip)).map(|ip| SocketAddr::new(ip, 0)).collect();
            if allowed.is_empty() {
                return Err(Box::new(AddressRefused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Was this request error caused by the address policy?
pub fn refused_by_policy(e: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<AddressRefused>() {
            return true;
        }
        source = s.source();
    }
    false
}
