//! What a signed-in request needs to know about its session, answered from memory while nothing about
//! the user's sessions has changed since storage was last read: that the session stands (its data and
//! its registry row) and the user's list of sessions (the success page).
//!
//! Every change to a user's sessions (a sign-in, a touch of the idle clock, a logout, a revocation, a
//! password change) bumps that user's *generation* once it is committed. An entry is filled with the
//! generation read *before* the storage reads that filled it, and used only while the generation is
//! still that one, so a fill racing a change is never used. Where the generations live decides where
//! the cache may be on:
//! - one instance over the app database's session store: in memory, so a signed-in page costs no
//!   storage round trip at all;
//! - sessions in Redis (several instances): a Redis counter per user (`session:gen:<user id>`), one
//!   GET per request instead of a session load and two registry queries, so a revocation on one
//!   instance is refused by the very next request on any other;
//! - several instances sharing a database without Redis: set `session.cache = false`.
//!
//! The cache only ever says yes. Anything it cannot vouch for goes to storage as before: an unknown id,
//! an entry older than [`MAX_AGE`] (the bound on what a crash between a commit and its bump can leave),
//! a session past its idle or absolute limit or due for its idle clock to be written, a generation that
//! cannot be read. The idle and absolute limits are checked on every request, from the entry.

use auth::sessions::{Liveness, SessionInfo, SignedIn};
use auth::SessionPolicy;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower_sessions::session::Id;
use tower_sessions_redis_store::fred::prelude::{KeysInterface, Pool as RedisPool};

/// The longest an entry is trusted without storage being read again.
pub const MAX_AGE: Duration = Duration::from_secs(5);
/// Sessions and users remembered at most (about 200 and 400 bytes each).
const SESSIONS: usize = 100_000;
const USERS: usize = 20_000;
/// In-memory generations are kept per stripe of user ids: a bump for one user also drops the
/// entries of the users sharing its stripe, which costs them one storage read, and memory stays fixed.
const STRIPES: usize = 4096;

#[derive(Clone)]
enum Generations {
    Off,
    Local(Arc<[AtomicU64]>),
    Redis { pool: RedisPool, ttl_secs: i64 },
}

#[derive(Clone)]
struct Checked {
    signed: SignedIn,
    generation: u64,
    at: Instant,
}

#[derive(Clone)]
struct Listed {
    rows: Arc<Vec<SessionInfo>>,
    generation: u64,
    at: Instant,
}

/// See the module documentation. Cheap to clone (shared).
#[derive(Clone)]
pub struct SessionCache {
    generations: Generations,
    sessions: Arc<quick_cache::sync::Cache<Id, Checked>>,
    lists: Arc<quick_cache::sync::Cache<i64, Listed>>,
    /// The pages drawn only from the session, as rendered at a generation (`server::page_cache`).
    pub pages: crate::page_cache::PageCache,
    /// Sessions answered from memory, and from storage (`/metrics`).
    hits: Arc<AtomicU64>,
    misses: Arc<AtomicU64>,
}

impl SessionCache {
    fn with(generations: Generations) -> Self {
        Self {
            generations,
            sessions: Arc::new(quick_cache::sync::Cache::new(SESSIONS)),
            lists: Arc::new(quick_cache::sync::Cache::new(USERS)),
            pages: Default::default(),
            hits: Arc::default(),
            misses: Arc::default(),
        }
    }

    /// No cache: every request reads storage.
    pub fn off() -> Self {
        Self::with(Generations::Off)
    }

    /// Generations in this process: only for one instance over its own session store.
    pub fn local() -> Self {
        Self::with(Generations::Local((0..STRIPES).map(|_| AtomicU64::new(0)).collect()))
    }

    /// Generations in Redis, shared by every instance; a counter lives as long as a session can.
    pub fn redis(pool: RedisPool, policy: &SessionPolicy) -> Self {
        let ttl_secs = policy.absolute_lifetime.as_secs() as i64 + 3600;
        Self::with(Generations::Redis { pool, ttl_secs })
    }

    pub fn kind(&self) -> &'static str {
        match self.generations {
            Generations::Off => "off",
            Generations::Local(_) => "memory",
            Generations::Redis { .. } => "redis",
        }
    }

    fn key(user_id: i64) -> String {
        format!("session:gen:{user_id}")
    }

    fn stripe(stripes: &[AtomicU64], user_id: i64) -> &AtomicU64 {
        &stripes[user_id.rem_euclid(STRIPES as i64) as usize]
    }

    /// Whether an entry filled at `at` under generation `filled` may answer under generation `now`
    /// (the page cache's entries too).
    pub(crate) fn usable(at: Instant, filled: u64, now: u64) -> bool {
        filled == now && at.elapsed() < MAX_AGE
    }

    /// The user's generation now; `None` when the cache is off or it cannot be read.
    pub async fn generation(&self, user_id: i64) -> Option<u64> {
        match &self.generations {
            Generations::Off => None,
            Generations::Local(stripes) => Some(Self::stripe(stripes, user_id).load(Ordering::Acquire)),
            Generations::Redis { pool, .. } => match pool.get::<Option<u64>, _>(Self::key(user_id)).await {
                Ok(g) => Some(g.unwrap_or(0)),
                Err(e) => {
                    tracing::warn!(error = %e, "session cache: cannot read a generation; reading storage");
                    None
                }
            },
        }
    }

    /// Tells every instance that `user_id`'s sessions changed: call after the change is committed.
    pub async fn changed(&self, user_id: i64) {
        match &self.generations {
            Generations::Off => {}
            Generations::Local(stripes) => {
                Self::stripe(stripes, user_id).fetch_add(1, Ordering::AcqRel);
            }
            Generations::Redis { pool, ttl_secs } => {
                let key = Self::key(user_id);
                let bumped = async {
                    pool.incr::<u64, _>(key.clone()).await?;
                    pool.expire::<(), _>(key, *ttl_secs, None).await
                };
                if let Err(e) = bumped.await {
                    // Other instances may trust what they hold for up to MAX_AGE more.
                    tracing::warn!(error = %e, user_id, "session cache: could not bump a generation");
                }
            }
        }
        // This instance forgets at once whatever the generation check would refuse anyway (even
        // when the bump did not reach Redis).
        self.lists.remove(&user_id);
    }

    /// The signed-in record of session `id` if the cache can vouch for it at `now` (unix seconds),
    /// with the generation it was vouched for at.
    pub async fn signed_in(&self, id: &Id, now: i64, policy: &SessionPolicy) -> Option<(SignedIn, u64)> {
        let found = self.vouch(id, now, policy).await;
        let counter = if found.is_some() { &self.hits } else { &self.misses };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    async fn vouch(&self, id: &Id, now: i64, policy: &SessionPolicy) -> Option<(SignedIn, u64)> {
        let entry = self.sessions.get(id)?;
        if policy.liveness(entry.signed.created_at, entry.signed.last_seen_at, now) != Liveness::Active
            || now - entry.signed.last_seen_at >= policy.touch_interval()
        {
            return None;
        }
        let generation = self.generation(entry.signed.user_id).await?;
        Self::usable(entry.at, entry.generation, generation).then_some((entry.signed, generation))
    }

    /// (answered from memory, read from storage) since start.
    pub fn counts(&self) -> (u64, u64) {
        (self.hits.load(Ordering::Relaxed), self.misses.load(Ordering::Relaxed))
    }

    /// The counters in Prometheus' text format.
    pub fn render_metrics(&self) -> String {
        let (hits, misses) = self.counts();
        format!(
            "# HELP session_cache_requests_total Signed-in requests by where their session was checked.\n\
             # TYPE session_cache_requests_total counter\n\
             session_cache_requests_total{{answered=\"memory\",generations=\"{kind}\"}} {hits}\n\
             session_cache_requests_total{{answered=\"storage\",generations=\"{kind}\"}} {misses}\n",
            kind = self.kind()
        ) + &self.pages.render_metrics()
    }

    /// Remembers that session `id` stood as `signed` when storage was read after `generation` was.
    pub fn remember(&self, id: Id, signed: &SignedIn, generation: Option<u64>) {
        if let Some(generation) = generation {
            self.sessions.insert(id, Checked { signed: signed.clone(), generation, at: Instant::now() });
        }
    }

    /// Forgets session `id` in this instance (it ended here; the other instances learn it from the bump).
    pub fn forget(&self, id: &Id) {
        self.sessions.remove(id);
        self.pages.forget(id);
    }

    /// `user_id`'s sessions that have not expired at `now`, newest first: from memory when the cache
    /// can vouch for them, else from `read` (the registry), remembered for the next request.
    /// `checked_at` is the generation this request's session was checked at, if known: it is not
    /// read again.
    pub async fn sessions_of<F, Fut, E>(&self, user_id: i64, now: i64, checked_at: Option<u64>, read: F) -> Result<Vec<SessionInfo>, E>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<SessionInfo>, E>>,
    {
        let generation = match checked_at {
            Some(g) => Some(g),
            None => self.generation(user_id).await,
        };
        if let (Some(entry), Some(g)) = (self.lists.get(&user_id), generation) {
            if Self::usable(entry.at, entry.generation, g) {
                return Ok(entry.rows.iter().filter(|s| s.expires_at > now).cloned().collect());
            }
        }
        let rows = read().await?;
        if let Some(generation) = generation {
            self.lists.insert(user_id, Listed { rows: Arc::new(rows.clone()), generation, at: Instant::now() });
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(user_id: i64, at: i64) -> SignedIn {
        SignedIn { user_id, username: "ann".into(), handle: "h".into(), created_at: at, last_seen_at: at }
    }

    #[tokio::test]
    async fn an_entry_is_used_only_while_its_users_generation_stands() {
        let cache = SessionCache::local();
        let policy = SessionPolicy::default();
        let (id, now) = (Id(7), 1_000_000);
        let g = cache.generation(1).await;
        cache.remember(id, &signed(1, now), g);
        assert_eq!(cache.signed_in(&id, now + 1, &policy).await.map(|(s, _)| s.user_id), Some(1));
        // Another user's change (another stripe) leaves it; its own user's change drops it.
        cache.changed(2).await;
        assert!(cache.signed_in(&id, now + 1, &policy).await.is_some());
        cache.changed(1).await;
        assert!(cache.signed_in(&id, now + 1, &policy).await.is_none());
        // A fill that read its generation before the change is never used.
        cache.remember(id, &signed(1, now), g);
        assert!(cache.signed_in(&id, now + 1, &policy).await.is_none());
    }

    #[tokio::test]
    async fn limits_and_the_idle_clock_send_the_request_to_storage() {
        let cache = SessionCache::local();
        let policy = SessionPolicy { idle_timeout: Duration::from_secs(40), absolute_lifetime: Duration::from_secs(100) };
        let (id, t) = (Id(9), 1_000);
        cache.remember(id, &signed(3, t), cache.generation(3).await);
        assert!(cache.signed_in(&id, t + 9, &policy).await.is_some());
        // The idle clock is due to be written (a quarter of the idle timeout): storage decides.
        assert!(cache.signed_in(&id, t + 10, &policy).await.is_none());
        // Past the idle limit, and past the absolute one, likewise.
        assert!(cache.signed_in(&id, t + 40, &policy).await.is_none());
        assert!(cache.signed_in(&id, t + 100, &policy).await.is_none());
    }

    #[tokio::test]
    async fn off_never_answers() {
        let cache = SessionCache::off();
        let id = Id(1);
        cache.remember(id, &signed(1, 0), cache.generation(1).await);
        assert!(cache.signed_in(&id, 1, &SessionPolicy::default()).await.is_none());
        let reads = std::sync::atomic::AtomicUsize::new(0);
        for _ in 0..2 {
            let rows: Result<_, ()> = cache
                .sessions_of(1, 0, None, || async {
                    reads.fetch_add(1, Ordering::Relaxed);
                    Ok(vec![])
                })
                .await;
            assert!(rows.unwrap().is_empty());
        }
        assert_eq!(reads.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_users_list_is_read_again_after_a_change_and_expired_rows_are_left_out() {
        let cache = SessionCache::local();
        let row = |handle: &str, expires_at| SessionInfo {
            handle: handle.into(),
            created_at: 0,
            last_seen_at: 0,
            expires_at,
            user_agent: String::new(),
            client_ip: String::new(),
        };
        let reads = std::sync::atomic::AtomicUsize::new(0);
        let read = || async {
            reads.fetch_add(1, Ordering::Relaxed);
            Ok::<_, ()>(vec![row("a", 100), row("b", 50)])
        };
        assert_eq!(cache.sessions_of(5, 10, None, read).await.unwrap().len(), 2);
        assert_eq!(cache.sessions_of(5, 60, None, read).await.unwrap().len(), 1, "b expired at 50");
        assert_eq!(reads.load(Ordering::Relaxed), 1);
        cache.changed(5).await;
        cache.sessions_of(5, 60, None, read).await.unwrap();
        assert_eq!(reads.load(Ordering::Relaxed), 2);
        // The generation the request's session was checked at is used as it is: the current one
        // answers from memory, another one reads storage.
        let g = cache.generation(5).await.unwrap();
        cache.sessions_of(5, 60, Some(g), read).await.unwrap();
        assert_eq!(reads.load(Ordering::Relaxed), 2);
        cache.sessions_of(5, 60, Some(g + 1), read).await.unwrap();
        assert_eq!(reads.load(Ordering::Relaxed), 3);
    }
}
